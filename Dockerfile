# mcp-warden: multi-stage build on the official Node 24 image. The runtime stage holds production
# dependencies and the compiled dist/ only, runs as the image's unprivileged `node` user, and writes
# nothing to its filesystem (logs go to stdout), so it runs with a read-only root filesystem.
# test/integration/image-build.test.ts replays these steps without a Docker engine.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    MCP_WARDEN_CONFIG=/etc/mcp-warden/config.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config.example.yaml ./
COPY schema ./schema
USER node
# 8080: the protected MCP endpoint; 9464: /healthz, /readyz, /metrics (probes belong on this port).
EXPOSE 8080 9464
HEALTHCHECK --interval=30s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
