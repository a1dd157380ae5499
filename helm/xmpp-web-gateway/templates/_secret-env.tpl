{{/* Generated from src/config/schema.ts by `npm run env-example`: the variables marked secret. */}}
{{- define "xwg.secretEnvNames" -}}DATABASE_URL REDIS_URL JWT_SECRET{{- end -}}
