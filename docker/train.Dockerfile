# syntax=docker/dockerfile:1.7
# Retraining job image: train -> evaluate on held-out tomograms -> promote, against the registry in
# OCTOPI_REGISTRY_URI (docker/train-entrypoint.sh). Same CUDA base and torch build as the worker; falls
# back to the CPU without a GPU. Build from the repository root:
#   docker build -f docker/train.Dockerfile -t octopi-serve/train:0.1.0 .
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

# -- train: the venv and the entry point on a clean CUDA runtime -------------------------------------------
FROM ${CUDA_IMAGE} AS train
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 octopi \
 && useradd --system --uid 10001 --gid octopi --home-dir /home/octopi --create-home --shell /usr/sbin/nologin octopi \
 && mkdir -p /work && chown octopi:octopi /work
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/train-entrypoint.sh /usr/local/bin/octopi-train
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# Training runs (runs/<preset>/) and the held-out tomograms (runs/held-out/) are written here.
WORKDIR /work
ENTRYPOINT ["octopi-train"]
CMD ["card", "--eval-count", "4"]
