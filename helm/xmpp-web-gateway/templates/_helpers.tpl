{{- define "xwg.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "xwg.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
"true" when the release runs as a cluster (several pods sharing Redis and
PostgreSQL: a Deployment), "" for the single-process default (a StatefulSet
with its SQLite volume). env.CLUSTER=redis with one replica is a cluster of one,
ready to scale.
*/}}
{{- define "xwg.clustered" -}}
{{- if or (gt (int .Values.replicaCount) 1) (eq (toString .Values.env.CLUSTER) "redis") -}}true{{- end -}}
{{- end -}}

{{- define "xwg.serverSecretName" -}}
{{- .Values.serverSecret.existingSecret | default (printf "%s-server-secret" (include "xwg.fullname" .)) -}}
{{- end -}}

{{/*
Refuses at render time what the gateway would refuse at start (src/config/load.ts),
one line each, so `helm install` fails instead of a CrashLoopBackOff.
*/}}
{{- define "xwg.validate" -}}
{{- $postgres := eq (toString .Values.env.STORAGE) "postgres" -}}
{{- if include "xwg.clustered" . -}}
{{- if not $postgres -}}
{{- fail (printf "replicaCount=%v (or env.CLUSTER=redis) needs env.STORAGE=postgres, not %q: SQLite is a file in one pod's volume, the pods must share one PostgreSQL (see docs/SCALING.md)" .Values.replicaCount (toString .Values.env.STORAGE)) -}}
{{- end -}}
{{- if not (or .Values.redisUrlFrom.secretName .Values.env.REDIS_URL) -}}
{{- fail (printf "replicaCount=%v (or env.CLUSTER=redis) needs a Redis: set redisUrlFrom.secretName (a Secret with the redis:// URL under key %q) or env.REDIS_URL" .Values.replicaCount .Values.redisUrlFrom.key) -}}
{{- end -}}
{{- end -}}
{{- /* WORKERS > 1 (node:cluster inside one pod): the gateway refuses it without CLUSTER=redis, and with it every
worker of a pod would advertise the one CLUSTER_ADVERTISE_URL the chart sets (the pod IP), so a BOSH request
forwarded to the pod could reach a worker that does not hold its session and get item-not-found. Pods scale. */ -}}
{{- if gt (int .Values.env.WORKERS) 1 -}}
{{- fail (printf "env.WORKERS=%v is not supported by the chart: one gateway process per pod, scale with replicaCount (the workers of one pod would share the pod's one address, to which other pods forward BOSH requests)" .Values.env.WORKERS) -}}
{{- end -}}
{{- /* HOST=0.0.0.0 listens on IPv4 only: on an IPv6 pod network the kubelet's probes and the other pods'
forwarded BOSH requests, all to the pod's IPv6 address, would find nothing listening. */ -}}
{{- if and (eq (toString .Values.ipv6PodNetwork) "true") (eq (toString .Values.env.HOST) "0.0.0.0") -}}
{{- fail "ipv6PodNetwork=true needs env.HOST=:: (0.0.0.0 listens on IPv4 only; the probes and the other pods reach the pod's IPv6 address)" -}}
{{- end -}}
{{- if and $postgres (not (or .Values.databaseUrlFrom.secretName .Values.env.DATABASE_URL)) -}}
{{- fail (printf "env.STORAGE=postgres needs a database: set databaseUrlFrom.secretName (a Secret with the postgres:// URL under key %q) or env.DATABASE_URL" .Values.databaseUrlFrom.key) -}}
{{- end -}}
{{- end -}}

{{/*
The variables the chart computes itself in cluster mode, so they stand in the
container's env (the Downward API and $(POD_IP) expansion are not possible in a
ConfigMap): NODE_ID, and CLUSTER_ADVERTISE_URL when env leaves it empty.
*/}}
{{- define "xwg.envComputed" -}}
{{- if include "xwg.clustered" . }}
- NODE_ID
{{- if and (hasKey .Values.env "CLUSTER_ADVERTISE_URL") (not .Values.env.CLUSTER_ADVERTISE_URL) }}
- CLUSTER_ADVERTISE_URL
{{- end }}
{{- end }}
{{- end -}}

{{/*
The ConfigMap's data (configmap.yaml): every variable of .env.example
(templates/_env-names.tpl, generated) except the secret ones (the chart's
Secret, or an existing one) and the computed ones, each exactly once. In
cluster mode CLUSTER and SM_BACKEND are redis whatever env says.
*/}}
{{- define "xwg.configData" -}}
{{- $clustered := include "xwg.clustered" . -}}
{{- $skip := concat (splitList " " (include "xwg.secretEnvNames" .)) (include "xwg.envComputed" . | fromYamlArray | default list) -}}
{{- range (splitList " " (include "xwg.envNames" .)) }}
{{- if not (has . $skip) }}
{{- if and $clustered (has . (list "CLUSTER" "SM_BACKEND")) }}
{{ . }}: "redis"
{{- else }}
{{ . }}: {{ include "xwg.envValue" (get $.Values.env .) | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
A value as the process reads it. Helm reads a number of a values file (or
--set-json) as a float, which toString writes 6.7108864e+07: whole ones are
written as integers.
*/}}
{{- define "xwg.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end -}}
{{- end -}}

{{- define "xwg.configMapName" -}}{{ printf "%s-config" (include "xwg.fullname" .) }}{{- end -}}

{{/*
The container's env, beside the ConfigMap (envFrom): the computed variables
and the secret ones, each from its Secret by key.
*/}}
{{- define "xwg.env" -}}
{{- $computed := include "xwg.envComputed" . | fromYamlArray | default list -}}
{{- if has "NODE_ID" $computed }}
# The pod name: unique among live pods, as NODE_ID must be. A replaced pod is a
# new node; the survivors drain the old one's inbox and take over its sessions.
- name: NODE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- if has "CLUSTER_ADVERTISE_URL" $computed }}
# A BOSH request that reaches the wrong pod is forwarded to the owner's
# CLUSTER_ADVERTISE_URL: its pod IP (the default, 127.0.0.1, is no pod's peer).
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: CLUSTER_ADVERTISE_URL
  value: {{ printf (ternary "http://[$(POD_IP)]:%v" "http://$(POD_IP):%v" (eq (toString .Values.ipv6PodNetwork) "true")) .Values.env.PORT | quote }}
{{- end }}
{{- range (include "xwg.secretEnvInClear" . | fromYamlArray | default list) }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "xwg.envSecretName" $ }}
      key: {{ . }}
{{- end }}
{{- with .Values.nodeOptions }}
# Node's own options (V8's heap size), not a gateway setting.
- name: NODE_OPTIONS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.redisUrlFrom.secretName }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redisUrlFrom.key }}
{{- end }}
{{- with .Values.databaseUrlFrom.secretName }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.databaseUrlFrom.key }}
{{- end }}
{{- end -}}

{{/* The pod template shared by the StatefulSet and the Deployment. */}}
{{- define "xwg.podTemplate" -}}
metadata:
  labels: {{- include "xwg.labels" . | nindent 4 }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ include "xwg.metricsPort" . | quote }}
    prometheus.io/path: /metrics
    # A changed value in the ConfigMap or the chart's env Secret rolls the pods:
    # envFrom and secretKeyRef are read only when a container starts.
    checksum/env-config: {{ include "xwg.configData" . | sha256sum }}
    {{- with (include "xwg.secretEnvInClear" . | fromYamlArray | default list) }}
    checksum/env-secret: {{ include "xwg.secretEnvData" $ | sha256sum }}
    {{- end }}
spec:
  # After SIGTERM the process ends itself within SHUTDOWN_TIMEOUT; the margin
  # keeps Kubernetes' SIGKILL from cutting its shutdown short.
  terminationGracePeriodSeconds: {{ add (int .Values.env.SHUTDOWN_TIMEOUT) (int .Values.terminationGraceMarginSeconds) }}
  {{- with .Values.podSecurityContext }}
  securityContext: {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: gateway
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      envFrom:
        - configMapRef:
            name: {{ include "xwg.configMapName" . }}
      {{- with (include "xwg.env" . | trim) }}
      env: {{- . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext: {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ int .Values.env.PORT }}
        {{- if ne (toString .Values.env.METRICS_PORT) "0" }}
        - name: metrics
          containerPort: {{ int .Values.env.METRICS_PORT }}
        {{- end }}
      # /healthz: the process answers; /readyz: it accepts sessions (503 while
      # starting and from SIGTERM on, so the Service stops sending clients).
      startupProbe:
        httpGet: { path: /healthz, port: http }
        {{- toYaml .Values.probes.startup | nindent 8 }}
      readinessProbe:
        httpGet: { path: /readyz, port: http }
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      livenessProbe:
        httpGet: { path: /healthz, port: http }
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      resources: {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: {{ .Values.env.DATA_DIR }}
        # The root file system is read-only; SQLite's temporary files (large sorts, VACUUM) go here.
        - name: tmp
          mountPath: /tmp
        {{- if include "xwg.clustered" . }}
        # One server secret for every pod: unknown users' fake SCRAM salts must
        # not differ between pods (that would tell which accounts exist).
        - name: server-secret
          mountPath: {{ printf "%s/server-secret" (trimSuffix "/" .Values.env.DATA_DIR) }}
          subPath: server-secret
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
  {{- if include "xwg.clustered" . }}
    # No PVC: the state lives in Redis and PostgreSQL.
    - name: data
      emptyDir: {}
    - name: server-secret
      secret:
        secretName: {{ include "xwg.serverSecretName" . }}
        defaultMode: 0440
        items:
          - key: server-secret
            path: server-secret
  {{- end }}
{{- end -}}

{{/* The port Prometheus scrapes: METRICS_PORT when set, else the HTTP port. */}}
{{- define "xwg.metricsPort" -}}
{{- if ne (toString .Values.env.METRICS_PORT) "0" }}{{ .Values.env.METRICS_PORT }}{{ else }}{{ .Values.env.PORT }}{{ end -}}
{{- end -}}

{{/* Refusals of the optional objects (monitoring.yaml, autoscaling.yaml), one line each. */}}
{{- define "xwg.validateExtras" -}}
{{- if and .Values.autoscaling.enabled (not (include "xwg.clustered" .)) -}}
{{- fail "autoscaling.enabled needs the cluster mode (env.STORAGE=postgres, a Redis, replicaCount > 1 or env.CLUSTER=redis): with SQLite the data is one pod's file and a second pod cannot share it" -}}
{{- end -}}
{{- $loopback := has (toString .Values.env.METRICS_HOST) (list "127.0.0.1" "::1" "localhost") -}}
{{- if and .Values.serviceMonitor.enabled (ne (toString .Values.env.METRICS_PORT) "0") $loopback -}}
{{- fail (printf "serviceMonitor.enabled with env.METRICS_PORT=%v needs env.METRICS_HOST=0.0.0.0 (or ::): Prometheus in another pod cannot reach %v" .Values.env.METRICS_PORT .Values.env.METRICS_HOST) -}}
{{- end -}}
{{- end -}}

{{/*
The paths a public route (Ingress, HTTPRoute) sends to the gateway: WebSocket,
BOSH, XEP-0156 host-meta, and the demo page's files when ingress.demoPage.
Nothing else, so /metrics, /healthz and /readyz stay inside the cluster.
*/}}
{{- define "xwg.publicPaths" -}}
- { path: /xmpp-websocket, type: Exact }
- { path: /http-bind, type: Exact }
- { path: /.well-known/, type: Prefix }
{{- if .Values.ingress.demoPage }}
- { path: /, type: Exact }
{{- range .Values.ingress.demoFiles }}
- { path: {{ printf "/%s" . }}, type: Exact }
{{- end }}
{{- end }}
{{- end -}}

{{/*
The secret variables (templates/_secret-env.tpl) not taken from an existing
Secret: they go into the chart's own Secret (env-secret.yaml), empty ones too,
so that ConfigMap and Secret together mirror .env.example one to one.
*/}}
{{- define "xwg.secretEnvInClear" -}}
{{- $fromSecret := list -}}
{{- if .Values.redisUrlFrom.secretName }}{{ $fromSecret = append $fromSecret "REDIS_URL" }}{{ end -}}
{{- if .Values.databaseUrlFrom.secretName }}{{ $fromSecret = append $fromSecret "DATABASE_URL" }}{{ end -}}
{{- range (splitList " " (include "xwg.secretEnvNames" .)) }}
{{- if not (has . $fromSecret) }}
- {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "xwg.envSecretName" -}}{{ printf "%s-env" (include "xwg.fullname" .) }}{{- end -}}

{{/* The chart's env Secret's data (env-secret.yaml), as YAML. */}}
{{- define "xwg.secretEnvData" -}}
{{- range (include "xwg.secretEnvInClear" . | fromYamlArray | default list) }}
{{ . }}: {{ include "xwg.envValue" (get $.Values.env .) | quote }}
{{- end }}
{{- end -}}
