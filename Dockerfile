# The gateway's image (issue 17 item 5):
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t xmpp-web-gateway:0.1.0 .
#   docker run -d -p 5280:5280 -v xwg-data:/data -e XMPP_DOMAIN=example.com xmpp-web-gateway:0.1.0
# Node 22 LTS on Debian 12, pinned by minor (a patch release of the same minor comes with `docker build --pull`);
# pin by digest (node:22.20-bookworm-slim@sha256:…) for builds that must repeat byte for byte.
# test/unit/dockerfile.test.ts checks what this file promises; no test builds or runs it (no container engine here).

FROM node:22.20-bookworm-slim AS build
# Only for a source build of better-sqlite3 when no prebuilt binary fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, in their own layer: a change under src/ does not reinstall them nor rebuild better-sqlite3.
# --ignore-scripts: our own `prepare` (the build) needs src/, copied below; better-sqlite3's install is run explicitly.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
# There is no .git in the build context: the commit for xmpp_build_info comes in as a build argument.
ARG GIT_COMMIT=unknown
RUN GIT_COMMIT=${GIT_COMMIT} npm run build && npm prune --omit=dev

FROM node:22.20-bookworm-slim
# tini as PID 1 forwards SIGTERM to Node (which then closes every session and flushes offline messages) and reaps
# children; `docker run --init` would do the same, but Kubernetes has no such flag.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production DATA_DIR=/data HOST=0.0.0.0 PORT=5280
WORKDIR /app
# The runtime user is the image's `node`, by number (1000) so that Kubernetes' runAsNonRoot can check it. /data is
# created owned by it: a named volume starts as a copy of it; a bind-mounted or root-owned volume needs a chown or
# the pod's fsGroup (README, Operate).
RUN mkdir -p /data && chown 1000:1000 /data && chmod 0700 /data
# Code and production dependencies stay root-owned: the process cannot rewrite its own code.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY public ./public
USER 1000:1000
VOLUME /data
EXPOSE 5280
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
