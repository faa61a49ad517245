# kubesim, the simulated Kubernetes API server, for local clusters in containers. Built like
# deploy/Dockerfile (CONTEXT holds `kubesim`).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY kubesim /usr/local/bin/kubesim
USER 65532:65532
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/kubesim"]
CMD ["--listen", "0.0.0.0:6443"]
