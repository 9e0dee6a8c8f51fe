"""Deployment snippets for a plan: the engine's launch command and a Kubernetes manifest."""

from __future__ import annotations

from tmx_planner.domain.performance import Deployment

_HF_IDS = {
    "Llama-2-70B": "meta-llama/Llama-2-70b-chat-hf", "Llama-3.1-8B": "meta-llama/Llama-3.1-8B-Instruct",
    "Llama-3.1-70B": "meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-405B": "meta-llama/Llama-3.1-405B-Instruct",
    "Llama-3.3-70B": "meta-llama/Llama-3.3-70B-Instruct",
    "Llama-4-Maverick-17B-128E": "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
    "Mistral-7B": "mistralai/Mistral-7B-Instruct-v0.3", "Mixtral-8x7B": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "Qwen2.5-7B": "Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-72B": "Qwen/Qwen2.5-72B-Instruct", "Qwen3-8B": "Qwen/Qwen3-8B",
    "Qwen3-32B": "Qwen/Qwen3-32B", "Qwen3-235B-A22B": "Qwen/Qwen3-235B-A22B", "DeepSeek-V3": "deepseek-ai/DeepSeek-V3",
    "DeepSeek-R1": "deepseek-ai/DeepSeek-R1", "gpt-oss-20b": "openai/gpt-oss-20b", "gpt-oss-120b": "openai/gpt-oss-120b",
    "Gemma-3-27B": "google/gemma-3-27b-it", "MiniMax-M2.5": "MiniMaxAI/MiniMax-M2.5",
}
_QUANT = {"fp8": "fp8", "int4-awq": "awq", "int4-gptq": "gptq", "nvfp4": "modelopt_fp4", "mxfp4": "mxfp4",
          "int8": "experts_int8"}
_IMAGES = {"vllm": "vllm/vllm-openai:latest", "sglang": "lmsysorg/sglang:latest",
           "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:latest"}


def model_id(d: Deployment) -> str:
    return _HF_IDS.get(d.model.name, d.model.name)


def launch_command(d: Deployment, max_model_len: int, max_num_seqs: int, max_batched_tokens: int) -> str:
    model = model_id(d)
    quant = _QUANT.get(d.precision)
    if d.engine == "vllm":
        args = [f"vllm serve {model}", f"--tensor-parallel-size {d.tp}", f"--max-model-len {max_model_len}",
                f"--max-num-seqs {max_num_seqs}", f"--max-num-batched-tokens {max_batched_tokens}",
                "--enable-prefix-caching", "--gpu-memory-utilization 0.90"]
        if d.model.moe and d.tp > 1:
            args.append("--enable-expert-parallel")
        if quant:
            args.append(f"--quantization {quant}")
        return " ".join(args)
    if d.engine == "sglang":
        args = [f"python -m sglang.launch_server --model-path {model}", f"--tp {d.tp}",
                f"--context-length {max_model_len}", f"--max-running-requests {max_num_seqs}",
                f"--chunked-prefill-size {max_batched_tokens}"]
        if quant:
            args.append(f"--quantization {quant}")
        return " ".join(args)
    args = [f"trtllm-serve {model}", f"--tp_size {d.tp}", f"--max_seq_len {max_model_len}",
            f"--max_batch_size {max_num_seqs}", f"--max_num_tokens {max_batched_tokens}",
            "--kv_cache_free_gpu_memory_fraction 0.95"]
    return " ".join(args)


def kubernetes_manifest(d: Deployment, command: str) -> str:
    name = f"{d.model.name}-{d.engine}".lower().replace(".", "-").replace("_", "-")
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, tensormux.io/model: "{d.model.name}"}}
spec:
  replicas: {d.replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.product: "{d.gpu.name}"}}
      containers:
        - name: engine
          image: {_IMAGES[d.engine]}
          command: ["sh", "-c", "{command} --host 0.0.0.0 --port 8000"]
          ports: [{{containerPort: 8000, name: http}}]
          resources: {{limits: {{nvidia.com/gpu: {d.tp}}}}}
          readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 5}}
          volumeMounts: [{{name: shm, mountPath: /dev/shm}}]
      volumes: [{{name: shm, emptyDir: {{medium: Memory, sizeLimit: 16Gi}}}}]
"""
