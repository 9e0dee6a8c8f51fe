FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY libs/ libs/
COPY kernels/ kernels/
COPY services/forge-worker/ services/forge-worker/
RUN pip install --no-cache-dir libs/tmx-proto libs/tmx-errors libs/tmx-config libs/tmx-telemetry \
        libs/tmx-eventbus libs/tmx-grpcserver kernels services/forge-worker
RUN useradd --system --create-home tmx
USER tmx
CMD ["python", "-m", "tmx_forge"]
