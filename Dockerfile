# The rollwise controller image: `docker build -t IMAGE .`, then `rollwise install --image IMAGE`.
# The wheel of this checkout and the dependencies pinned in uv.lock (no dev group), installed by
# uv into a virtualenv that is copied alone into a slim runtime image running as non-root.

FROM python:3.11-slim AS build
# the same uv as the Makefile's UV_VERSION (a test keeps them equal)
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/rollwise
WORKDIR /src
# dependencies first: this layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
# then rollwise itself, built as a wheel (not an editable install) into the same environment
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
# the virtualenv's interpreter is the base image's python, at the same path in both stages
COPY --from=build /opt/rollwise /opt/rollwise
# bytecode was compiled at install time; the root filesystem is read-only in the Deployment,
# and /tmp is an emptyDir there
ENV PATH=/opt/rollwise/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROLLWISE_HOME=/tmp/rollwise
# a numeric non-root user, so that the pod's runAsNonRoot can verify it
USER 65532:65532
EXPOSE 8090 8080
ENTRYPOINT ["rollwise"]
CMD ["controller", "--kubernetes"]
