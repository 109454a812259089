# syntax=docker/dockerfile:1.7
# Gateway image: `octopi-serve gateway` (FastAPI under uvicorn) with the CPU build of torch, as a
# non-root user. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t octopi-serve/gateway:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- build: a virtual environment with the package and its dependencies ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The gateway holds no model, but listing the registry imports torch: the CPU build is enough.
ARG TORCH_VERSION=2.13.0
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY octopi_core ./octopi_core
COPY app ./app
COPY worker ./worker
COPY octopi_serve ./octopi_serve
# torch pinned again: pip's resolver could otherwise swap the build installed above for another.
RUN pip install --no-cache-dir . "torch==${TORCH_VERSION}" \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# -- gateway: the venv on a clean base, no compilers, no pip cache -----------------------------------------
FROM ${PYTHON_IMAGE} AS gateway
RUN groupadd --system --gid 10001 octopi \
 && useradd --system --uid 10001 --gid octopi --home-dir /home/octopi --create-home --shell /usr/sbin/nologin octopi
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OCTOPI_HOST=0.0.0.0 \
    OCTOPI_PORT=8000
USER 10001:10001
WORKDIR /home/octopi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OCTOPI_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["octopi-serve"]
CMD ["gateway"]
