{{/*
Expand the name of the chart.
*/}}
{{- define "dtwin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters (some name
fields are limited to that by the DNS naming spec). If the release name
already contains the chart name it is used as the full name.
*/}}
{{- define "dtwin.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the chart label.
*/}}
{{- define "dtwin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "dtwin.labels" -}}
helm.sh/chart: {{ include "dtwin.chart" . }}
{{ include "dtwin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dtwin
{{- end }}

{{/*
Selector labels (immutable: used in the Deployment's and the Service's selectors).
*/}}
{{- define "dtwin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dtwin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "dtwin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dtwin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: [registry/]repository[:tag][@digest]. The tag defaults to
the chart's appVersion. Call with (dict "root" $ "repository" ... "tag" ... "digest" ...).
*/}}
{{- define "dtwin.imageRef" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" }}
{{- $ref := .repository }}
{{- if $registry }}
{{- $ref = printf "%s/%s" $registry .repository }}
{{- end }}
{{- $tag := default .root.Chart.AppVersion .tag | toString }}
{{- $ref = printf "%s:%s" $ref $tag }}
{{- if .digest }}
{{- $ref = printf "%s@%s" $ref .digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
The operator image.
*/}}
{{- define "dtwin.image" -}}
{{- include "dtwin.imageRef" (dict "root" . "repository" .Values.image.repository "tag" .Values.image.tag "digest" .Values.image.digest) }}
{{- end }}

{{/*
The bridge image the operator renders into each Site's bridge Deployment.
*/}}
{{- define "dtwin.bridgeImage" -}}
{{- include "dtwin.imageRef" (dict "root" . "repository" .Values.bridge.image.repository "tag" .Values.bridge.image.tag) }}
{{- end }}

{{- define "dtwin.modelImage" -}}
{{- include "dtwin.imageRef" (dict "root" . "repository" .Values.models.image.repository "tag" .Values.models.image.tag) }}
{{- end }}

{{- define "dtwin.trainerImage" -}}
{{- include "dtwin.imageRef" (dict "root" . "repository" .Values.trainer.image.repository "tag" .Values.trainer.image.tag) }}
{{- end }}

{{- define "dtwin.scorerImage" -}}
{{- include "dtwin.imageRef" (dict "root" . "repository" .Values.scorer.image.repository "tag" .Values.scorer.image.tag) }}
{{- end }}
