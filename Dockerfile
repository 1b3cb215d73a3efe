# syntax=docker/dockerfile:1
# QueueWorker image: the worker published framework-dependent on the ASP.NET Core runtime image,
# running as a non-root user, configured by environment (RabbitMq__Uri, Model__Path, Inference__*,
# Http__Port), the model mounted read-only at /models. See docs/operating.md.
#
#   docker build -t queueworker .
#   docker run --rm --cpus 2 -m 2g -v /path/to/models:/models:ro \
#     -e Model__Path=/models/model.gguf -e RabbitMq__Uri=amqp://user:pass@broker:5672/ queueworker

# Build on the builder's own platform, publish for the target's (multi-arch builds stay fast).
FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TARGETARCH
WORKDIR /src

# .editorconfig and BannedSymbols.txt are build inputs: the style rules (and CS1591 off) and the banned APIs.
COPY global.json .editorconfig Directory.Build.props Directory.Packages.props BannedSymbols.txt appsettings.json ./
COPY src/ src/
# Restore and publish in one step (robust to projects being added); the package cache survives
# between builds in a BuildKit cache mount instead of an image layer.
# -a <arch> publishes only that architecture's native llama.cpp builds, kept where LLamaSharp looks
# for them (runtimes/linux-<arch>/native/<avx level>/); fail here rather than at model load.
RUN --mount=type=cache,id=queueworker-nuget,target=/root/.nuget/packages \
    dotnet publish src/QueueWorker/QueueWorker.csproj -c Release -a "$TARGETARCH" --self-contained false \
        -p:UseAppHost=false -o /app \
    && { find /app/runtimes -name libllama.so | grep -q . \
         || { echo "publish output lacks runtimes/*/native/**/libllama.so (LLamaSharp.Backend.Cpu)" >&2; exit 1; }; }

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
# llama.cpp's CPU backend links OpenMP (libgomp.so.1), which the .NET runtime image does not ship.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY --from=build /app ./

# Configuration keys are those of appsettings.json (a contract); environment variables override them.
# ASPNETCORE_HTTP_PORTS is cleared: the worker binds Kestrel from Http:Port/Http:BindAddress itself.
ENV Model__Path=/models/model.gguf \
    Http__Port=8080 \
    Http__BindAddress=0.0.0.0 \
    ASPNETCORE_HTTP_PORTS= \
    DOTNET_NOLOGO=1

EXPOSE 8080

# The base image's non-root "app" user (APP_UID=1654), numeric so that Kubernetes' runAsNonRoot can verify it.
USER 1654:1654

# /healthz answers 200 while the process serves. The image has no curl or wget: bash's /dev/tcp
# speaks just enough HTTP. The port follows Http__Port when it is overridden at run time.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${Http__Port:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop, Kubernetes) makes the worker stop taking jobs and finish or requeue the
# ones in flight within RabbitMq:ShutdownGraceSeconds: give it longer than that before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "QueueWorker.dll"]
