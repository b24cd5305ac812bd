{{/*
The labels of every object: the same as the kustomize base's, and no more,
so that the chart and the overlays render equal objects (deploy/chart_test.go).
*/}}
{{- define "podguard.labels" -}}
app.kubernetes.io/name: podguard
app.kubernetes.io/part-of: podguard
{{- end }}

{{/* The ServiceAccount podguard runs as, as an RBAC subject. */}}
{{- define "podguard.subject" -}}
- kind: ServiceAccount
  name: podguard
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The namespaces podguard never acts in, as a JSON array:
webhooks.excludedNamespaces and the release namespace. Every webhook's
namespaceSelector leaves them out, and the config's namespaces.exclude is
the same list unless config.namespaces.exclude sets its own.
*/}}
{{- define "podguard.excludedNamespaces" -}}
{{- $excluded := .Values.webhooks.excludedNamespaces -}}
{{- if not (has .Release.Namespace $excluded) }}{{ $excluded = append $excluded .Release.Namespace }}{{ end -}}
{{- toJson $excluded -}}
{{- end }}

{{/*
The namespaceSelector of every webhook: never the excluded namespaces nor
the release namespace, and the scope's label.
*/}}
{{- define "podguard.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: NotIn, values: {{ include "podguard.excludedNamespaces" . }}}
  {{- if eq .Values.scope "opt-in" }}
  - {key: podguard.io/enabled, operator: In, values: ["true"]}
  {{- else if eq .Values.scope "cluster-wide" }}
  - {key: podguard.io/enabled, operator: NotIn, values: ["false"]}
  {{- else }}
  {{- fail (printf "scope must be opt-in or cluster-wide, not %q" .Values.scope) }}
  {{- end }}
{{- end }}

{{/* The cert-manager CA injection annotation of both webhook configurations. */}}
{{- define "podguard.webhookAnnotations" -}}
{{- if eq .Values.tls.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/podguard-serving
{{- else if ne .Values.tls.mode "self-managed" }}
{{- fail (printf "tls.mode must be cert-manager or self-managed, not %q" .Values.tls.mode) }}
{{- end }}
{{- end }}

{{/* podguard's image reference: image.repository, tagged image.tag or the chart's appVersion. */}}
{{- define "podguard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
