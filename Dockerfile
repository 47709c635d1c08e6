# syntax=docker/dockerfile:1
# twokey server image: built on Node 24, run on a distroless Node 24 runtime as a non-root user,
# with production dependencies only.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# Scripts are skipped: the pinned `node` dev dependency is not needed inside a Node 24 image.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/twokey.js"]
CMD ["serve", "--config", "/etc/twokey/policy/policy.yaml", "--tls-cert", "/etc/twokey/tls/tls.crt", "--tls-key", "/etc/twokey/tls/tls.key"]
