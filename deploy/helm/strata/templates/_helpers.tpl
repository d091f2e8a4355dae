{{/*
Names. Every object is "<fullname>-<component>". The base is cut to 45 characters so that
StatefulSet pod names plus their controller-revision-hash label stay within 63 characters.
*/}}
{{- define "strata.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "strata.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* strata.component: (dict "ctx" $ "component" "bookie") → "<fullname>-bookie" */}}
{{- define "strata.component" -}}
{{- printf "%s-%s" (include "strata.fullname" .ctx) .component }}
{{- end }}

{{- define "strata.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "broker"). Never change them:
selectors of Deployments and StatefulSets are immutable. */}}
{{- define "strata.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strata.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "strata.labels" -}}
helm.sh/chart: {{ include "strata.chart" .ctx }}
{{ include "strata.selectorLabels" . }}
app.kubernetes.io/part-of: strata
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "strata.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "strata.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "strata.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The fully qualified name of a Service: (dict "ctx" $ "service" "name"). */}}
{{- define "strata.serviceFQDN" -}}
{{- printf "%s.%s.svc.%s" .service .ctx.Release.Namespace .ctx.Values.clusterDomain }}
{{- end }}

{{/* etcd client endpoints (host:port, comma-separated): the external ones, or every member of
the chart's etcd by its stable DNS name so the client can fail over between members. */}}
{{- define "strata.etcdEndpoints" -}}
{{- if .Values.etcd.external.endpoints }}
{{- join "," .Values.etcd.external.endpoints }}
{{- else }}
{{- $etcd := include "strata.component" (dict "ctx" . "component" "etcd") }}
{{- $domain := include "strata.serviceFQDN" (dict "ctx" . "service" (printf "%s-headless" $etcd)) }}
{{- $eps := list }}
{{- range $i := until (int .Values.etcd.replicas) }}
{{- $eps = append $eps (printf "%s-%d.%s:2379" $etcd $i $domain) }}
{{- end }}
{{- join "," $eps }}
{{- end }}
{{- end }}

{{/* The brokers' Service name and URLs registered for the cluster by the init job. */}}
{{- define "strata.brokerHost" -}}
{{- include "strata.serviceFQDN" (dict "ctx" . "service" (include "strata.component" (dict "ctx" . "component" "broker"))) }}
{{- end }}

{{- define "strata.clusterName" -}}
{{- default .Release.Name .Values.cluster.name }}
{{- end }}

{{/* Metadata flags of brokers and the init job: the local store and, when separate, the
configuration store. Bookies only take --etcd-endpoints. */}}
{{- define "strata.metadataArgs" -}}
- --etcd-endpoints={{ include "strata.etcdEndpoints" . }}
{{- with .Values.configStore.endpoints }}
- --config-store-endpoints={{ join "," . }}
{{- end }}
{{- end }}

{{/* A number or string value as a flag value: YAML numbers arrive as floats, so print whole
numbers without an exponent. */}}
{{- define "strata.flagValue" -}}
{{- if kindIs "float64" . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Pod and container security contexts of a component: its own, else the chart-wide one.
Argument: (dict "ctx" $ "values" .Values.bookie). */}}
{{- define "strata.podSecurityContext" -}}
{{- toYaml (.values.podSecurityContext | default .ctx.Values.podSecurityContext) }}
{{- end }}

{{- define "strata.securityContext" -}}
{{- toYaml (.values.securityContext | default .ctx.Values.securityContext) }}
{{- end }}

{{/* Pod affinity of a component: its explicit affinity, else anti-affinity against its own pods.
Argument: (dict "ctx" $ "component" "bookie" "values" .Values.bookie). */}}
{{- define "strata.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else if eq .values.antiAffinity.type "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ .values.antiAffinity.topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "strata.selectorLabels" . | nindent 10 }}
{{- else if eq .values.antiAffinity.type "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: {{ .values.antiAffinity.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "strata.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling fields shared by all components: (dict "ctx" $ "component" "x" "values" .Values.x). */}}
{{- define "strata.podScheduling" -}}
{{- $affinity := include "strata.affinity" . | trim }}
{{- with $affinity }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A probe: (dict "path" "/readyz" "port" "http" "scheme" "HTTP" "timing" .Values.bookie.probes.readiness). */}}
{{- define "strata.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
  scheme: {{ .scheme | default "HTTP" }}
{{- toYaml .timing | nindent 0 }}
{{- end }}

{{/* The auth key file inside the broker container. */}}
{{- define "strata.authKeyName" -}}
{{- if .Values.auth.token.existingSecretKey }}
{{- .Values.auth.token.existingSecretKey }}
{{- else if eq .Values.auth.token.type "publicKey" }}
{{- "public.key" }}
{{- else }}
{{- "secret.key" }}
{{- end }}
{{- end }}

{{- define "strata.authSecretName" -}}
{{- .Values.auth.token.existingSecret | default (include "strata.component" (dict "ctx" . "component" "token-key")) }}
{{- end }}

{{- define "strata.offloadSecretName" -}}
{{- .Values.offload.s3.credentials.existingSecret | default (include "strata.component" (dict "ctx" . "component" "offload")) }}
{{- end }}

{{/* true when brokers get S3 credentials from a Secret (existing or chart-made). */}}
{{- define "strata.offloadHasCredentials" -}}
{{- $c := .Values.offload.s3.credentials }}
{{- if and (eq .Values.offload.driver "s3") (or $c.existingSecret $c.accessKeyId) }}true{{ end }}
{{- end }}

{{/*
Consistency checks that values.schema.json cannot express. Rendered by validate.yaml, so both
`helm template` and `helm install` refuse a bad combination before anything reaches the cluster.
*/}}
{{- define "strata.validate" -}}
{{- $c := .Values.broker.config }}
{{- if gt (int $c.defaultAckQuorum) (int $c.defaultWriteQuorum) }}
{{- fail (printf "broker.config.defaultAckQuorum (%d) must not exceed defaultWriteQuorum (%d)" (int $c.defaultAckQuorum) (int $c.defaultWriteQuorum)) }}
{{- end }}
{{- if gt (int $c.defaultWriteQuorum) (int $c.defaultEnsembleSize) }}
{{- fail (printf "broker.config.defaultWriteQuorum (%d) must not exceed defaultEnsembleSize (%d)" (int $c.defaultWriteQuorum) (int $c.defaultEnsembleSize)) }}
{{- end }}
{{- if gt (int $c.defaultEnsembleSize) (int .Values.bookie.replicas) }}
{{- fail (printf "broker.config.defaultEnsembleSize (%d) needs at least that many bookies, but bookie.replicas is %d" (int $c.defaultEnsembleSize) (int .Values.bookie.replicas)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.auth.enabled (not .Values.serviceMonitor.bearerTokenSecret.name) }}
{{- fail "serviceMonitor.enabled with auth.enabled: set serviceMonitor.bearerTokenSecret.name (brokers answer /metrics only with a token)" }}
{{- end }}
{{- $as := .Values.broker.autoscaling }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "broker.autoscaling.minReplicas (%d) must not exceed maxReplicas (%d)" (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- if eq .Values.offload.driver "s3" }}
{{- if not .Values.offload.s3.bucket }}
{{- fail "offload.driver is s3: set offload.s3.bucket" }}
{{- end }}
{{- $cr := .Values.offload.s3.credentials }}
{{- if and $cr.existingSecret (or $cr.accessKeyId $cr.secretAccessKey) }}
{{- fail "offload.s3.credentials: set either existingSecret or accessKeyId/secretAccessKey, not both" }}
{{- end }}
{{- if and (not $cr.existingSecret) (ne (empty $cr.accessKeyId) (empty $cr.secretAccessKey)) }}
{{- fail "offload.s3.credentials: set both accessKeyId and secretAccessKey" }}
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- if and (not .Values.auth.token.existingSecret) (not .Values.auth.token.value) }}
{{- fail "auth.enabled: set auth.token.existingSecret (preferred) or auth.token.value" }}
{{- end }}
{{- if and .Values.auth.token.existingSecret .Values.auth.token.value }}
{{- fail "auth.token: set either existingSecret or value, not both" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled: set tls.existingSecret to a Secret holding the certificate and key" }}
{{- end }}
{{- if and .Values.tls.requireClientCert (not .Values.tls.caKey) }}
{{- fail "tls.requireClientCert: set tls.caKey, the CA that client certificates are checked against" }}
{{- end }}
{{- end }}
