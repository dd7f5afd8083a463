{{- define "osm.namespace" -}}
{{ default .Release.Namespace .Values.osm.osmNamespace }}
{{- end -}}

{{- define "osm.labels" -}}
app.kubernetes.io/name: openservicemesh.io
app.kubernetes.io/instance: {{ .Values.osm.meshName }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "osm.tag" -}}
{{ default .Chart.AppVersion .Values.osm.image.tag }}
{{- end -}}

{{- define "osm.image" -}}
{{ .root.Values.osm.image.registry }}/{{ index .root.Values.osm.image.name .name }}:{{ include "osm.tag" .root }}
{{- end -}}

{{- define "osm.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "osm.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "osm.validatorConfigName" -}}
{{ default (printf "osm-validator-mesh-%s" .Values.osm.meshName) .Values.osm.validatorWebhook.webhookConfigurationName }}
{{- end -}}
