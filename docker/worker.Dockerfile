# syntax=docker/dockerfile:1.7
# Worker image: `octopi-serve worker` on the CUDA runtime with a CUDA build of torch; with no GPU visible
# the worker runs on the CPU (OCTOPI_DEVICE=auto). The shipped model (octopi_core/models/default) is in
# the package; a champion promoted in the registry (OCTOPI_REGISTRY_URI) takes its place. Build from the
# repository root:
#   docker build -f docker/worker.Dockerfile -t octopi-serve/worker:0.1.0 .
# torch 2.13 from PyPI is built for CUDA 13 (NVIDIA driver 580 or newer). For older drivers pass a CUDA 12
# base and wheel index, e.g. --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04

# -- build: a virtual environment with the package and its dependencies ------------------------------------
FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY octopi_core ./octopi_core
COPY app ./app
COPY worker ./worker
COPY octopi_serve ./octopi_serve
# torch pinned again: pip's resolver could otherwise swap the build installed above for another.
RUN pip install --no-cache-dir . "torch==${TORCH_VERSION}" \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# -- worker: the venv on a clean CUDA runtime, only the Python interpreter added ---------------------------
FROM ${CUDA_IMAGE} AS worker
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 octopi \
 && useradd --system --uid 10001 --gid octopi --home-dir /home/octopi --create-home --shell /usr/sbin/nologin octopi
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OCTOPI_DEVICE=auto
USER 10001:10001
WORKDIR /home/octopi
# SIGTERM: the running job stops at its next batch and is re-queued; give it time (k8s: grace period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["octopi-serve"]
CMD ["worker"]
