# ecg-serve container: `docker compose up` (see docker-compose.yml).
#
# CPU image (default):
#   docker build -t ecg-serve .
# CUDA image (same steps, other base, library and feature):
#   docker build -t ecg-serve:cuda \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 \
#     --build-arg ORT_FLAVOUR=gpu --build-arg CARGO_FEATURES=cuda \
#     --build-arg EXECUTION_PROVIDER=cuda .
# onnxruntime-gpu 1.31.1 from PyPI links CUDA 13 (libcublas.so.13, libcudart.so.13)
# and loads cuDNN 9, hence a CUDA 13 cuDNN runtime base; the binary needs glibc >= 2.34.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- ONNX Runtime from its PyPI wheel, by the project's one script ---------------
# (on the Rust image, which already carries ca-certificates: builds behind a
# TLS-inspecting proxy mount their CA bundle over it, read-only)
FROM ${RUST_IMAGE} AS ort
ARG ORT_FLAVOUR=cpu
# Only pip's downloader is used, to fetch the pinned wheel; these tools never reach
# the final image, so their Debian versions are left to the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/fetch-ort.sh /src/scripts/fetch-ort.sh
RUN ORT_DIR=/ort /src/scripts/fetch-ort.sh "$ORT_FLAVOUR" \
    && mv "/ort/$ORT_FLAVOUR" /ort/lib

# --- build: dependencies cached in their own layer by cargo-chef -----------------
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG CARGO_FEATURES=""
# No debug line tables in the image's binary (44 MB -> about 15 MB).
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin ecg-serve --features "$CARGO_FEATURES" --recipe-path recipe.json
COPY . .
ARG ECG_GIT_SHA=unknown
ENV ECG_GIT_SHA=${ECG_GIT_SHA}
RUN cargo build --release --locked --bin ecg-serve --features "$CARGO_FEATURES" \
    && cp target/release/ecg-serve /ecg-serve

# --- runtime: no compiler, no Python; non-root --------------------------------
FROM ${RUNTIME_IMAGE}
ARG EXECUTION_PROVIDER=cpu
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ecg
COPY --from=ort /ort/lib/ /opt/onnxruntime/lib/
COPY --from=builder /ecg-serve /usr/local/bin/ecg-serve
COPY models/ /models/
# MIMALLOC_PURGE_DELAY=0: freed memory goes back to the OS at once (a 24-hour
# record's peak RSS 470 -> 415 MB; record 100's speed unchanged within noise).
ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1.31.1 \
    LD_LIBRARY_PATH=/opt/onnxruntime/lib \
    ECG_HOST=0.0.0.0 \
    ECG_PORT=8080 \
    ECG_MODEL_DIR=/models \
    ECG_LOG_FORMAT=json \
    ECG_EXECUTION_PROVIDER=${EXECUTION_PROVIDER} \
    MIMALLOC_PURGE_DELAY=0
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/ecg-serve", "--probe-ready"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ecg-serve"]
