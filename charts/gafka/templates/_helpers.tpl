{{/* Name of the chart, overridable. */}}
{{- define "gafka.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, shortened to leave room for the "-controller" suffix. */}}
{{- define "gafka.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- printf "%s-operator" .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gafka.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "gafka.labels" -}}
app.kubernetes.io/name: {{ include "gafka.name" . }}-operator
app.kubernetes.io/component: operator
{{ include "gafka.releaseLabels" . }}
{{- end }}

{{/* Labels of every object of the release (the example GafkaCluster gets only these). */}}
{{- define "gafka.releaseLabels" -}}
helm.sh/chart: {{ include "gafka.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gafka
{{- end }}

{{/* Labels selecting the operator's pods. */}}
{{- define "gafka.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gafka.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "gafka.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gafka.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gafka.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "gafka.brokerImage" -}}
{{- printf "%s:%s" .Values.brokerImage.repository (default .Chart.AppVersion .Values.brokerImage.tag) }}
{{- end }}

{{/* Where brokers reach the operator's controller. */}}
{{- define "gafka.controllerUrl" -}}
{{- $domain := ternary (printf ".%s" .Values.clusterDomain) "" (ne .Values.clusterDomain "") }}
{{- printf "http://%s-controller.%s.svc%s:%d" (include "gafka.fullname" .) .Release.Namespace $domain (int .Values.controller.port) }}
{{- end }}

{{/* Name of kopf's peering object (ClusterKopfPeering, or one KopfPeering per watched namespace). */}}
{{- define "gafka.peering" -}}
{{- include "gafka.fullname" . }}
{{- end }}

{{/* kopf's logging flags. */}}
{{- define "gafka.logFlags" -}}
{{- $level := .Values.operator.logLevel }}
{{- if eq $level "debug" }} --debug{{ else if eq $level "verbose" }} --verbose{{ else if eq $level "warning" }} --quiet{{ end }} --log-format={{ .Values.operator.logFormat }}
{{- end }}
