# Image for the Helm chart: docker build -t xmpp-web-gateway:0.1.0 .
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
COPY public ./public
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app /app
ENV DATA_DIR=/data HOST=0.0.0.0
EXPOSE 5280
USER node
CMD ["node", "dist/main.js"]
