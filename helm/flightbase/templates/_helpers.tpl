{{/* Names: every object name comes from here. */}}
{{- define "flightbase.fullname" -}}
{{- if .Values.fullnameOverride -}}{{ .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}{{- else if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "flightbase.jobqueue.fullname" -}}{{ include "flightbase.fullname" . }}-jobqueue{{- end -}}
{{- define "flightbase.registry.fullname" -}}{{ include "flightbase.fullname" . }}-registry{{- end -}}
{{- define "flightbase.ociRegistry.fullname" -}}{{ include "flightbase.fullname" . }}-oci{{- end -}}
{{- define "flightbase.ociRegistry.authSecret" -}}{{ include "flightbase.ociRegistry.fullname" . }}-auth{{- end -}}
{{- define "flightbase.postgresql.fullname" -}}{{ include "flightbase.fullname" . }}-postgresql{{- end -}}
{{- define "flightbase.datasets.pvc" -}}{{ .Values.storage.datasets.existingClaim | default (printf "%s-datasets" (include "flightbase.fullname" .)) }}{{- end -}}
{{- define "flightbase.workspaces.pvc" -}}{{ .Values.storage.workspaces.existingClaim | default (printf "%s-workspaces" (include "flightbase.fullname" .)) }}{{- end -}}
{{- define "flightbase.trainingNamespace" -}}{{ .Values.jobqueue.trainingNamespace | default .Release.Namespace }}{{- end -}}

{{/* Zero to JupyterHub's names (its Services and the hub's Secret), computed as its
_helpers-names.tpl does from jupyterhub.fullnameOverride / nameOverride: a string, even an
empty one (z2jh's default), is the prefix as it is, so the names are hub, proxy-public...;
null gives <release>-jupyterhub (the release name alone when it contains "jupyterhub"). */}}
{{- define "flightbase.z2jh.dash" -}}
{{- $jh := .Values.jupyterhub | default dict -}}
{{- $prefix := "" -}}
{{- if eq (typeOf $jh.fullnameOverride) "string" -}}
{{- $prefix = $jh.fullnameOverride -}}
{{- else -}}
{{- $name := $jh.nameOverride | default "jupyterhub" -}}
{{- $prefix = ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) -}}
{{- end -}}
{{- if $prefix }}{{ $prefix }}-{{ end -}}
{{- end -}}
{{- define "flightbase.z2jh.hub" -}}{{ include "flightbase.z2jh.dash" . }}hub{{- end -}}
{{- define "flightbase.z2jh.proxyPublic" -}}{{ include "flightbase.z2jh.dash" . }}proxy-public{{- end -}}
{{- define "flightbase.z2jh.proxyHttp" -}}{{ include "flightbase.z2jh.dash" . }}proxy-http{{- end -}}

{{- define "flightbase.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "flightbase.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The database URL of a service: an external URL, or the bundled PostgreSQL. */}}
{{- define "flightbase.dbEnv" -}}
{{- if .root.Values.postgresql.enabled }}
- name: FLIGHTBASE_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "flightbase.postgresql.fullname" .root }}
      key: password
- name: {{ .envName }}
  value: {{ printf "postgresql+psycopg://flightbase:$(FLIGHTBASE_DB_PASSWORD)@%s:5432/%s" (include "flightbase.postgresql.fullname" .root) .database | quote }}
{{- else }}
- name: {{ .envName }}
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required when postgresql.enabled is false" .root.Values.database.existingSecret }}
      key: {{ .secretKey }}
{{- end }}
{{- end -}}

{{- define "flightbase.podSecurity" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "flightbase.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Metrics (docs/kubernetes.md, "Metrics"): the Secret holding the metrics token, yours or the chart's. */}}
{{- define "flightbase.metrics.secretName" -}}{{ .Values.metrics.token.existingSecret | default (printf "%s-metrics" (include "flightbase.fullname" .)) }}{{- end -}}

{{/* FLIGHTBASE_METRICS_TOKEN of a service, from that Secret (never a plain value). */}}
{{- define "flightbase.metricsEnv" -}}
- name: FLIGHTBASE_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "flightbase.metrics.secretName" . }}
      key: {{ .Values.metrics.token.key }}
{{- end -}}

{{/* The prometheus.io/* annotations of a service's Service, for a Prometheus that discovers targets by annotation. */}}
{{- define "flightbase.metrics.scrapeAnnotations" -}}
{{- if .root.Values.metrics.scrapeAnnotations }}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/scheme: http
  prometheus.io/path: /services/{{ .service }}/metrics
  prometheus.io/port: {{ .port | quote }}
{{- end }}
{{- end -}}
