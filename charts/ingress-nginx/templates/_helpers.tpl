{{- define "ingress-nginx.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingress-nginx.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ingress-nginx.controller.fullname" -}}
{{- printf "%s-controller" (include "ingress-nginx.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingress-nginx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingress-nginx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingress-nginx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "ingress-nginx.labels" -}}
helm.sh/chart: {{ include "ingress-nginx.chart" . }}
{{ include "ingress-nginx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ingress-nginx
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ingress-nginx.image" -}}
{{- printf "%s:v%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag | trimPrefix "v") }}
{{- end }}
