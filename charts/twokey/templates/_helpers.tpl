{{/* Names. */}}
{{- define "twokey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "twokey.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "twokey.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "twokey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: twokey
{{- end -}}

{{- define "twokey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "twokey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "twokey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "twokey.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "twokey.priorityClassName" -}}
{{- default (printf "%s-webhook" (include "twokey.fullname" .)) .Values.priorityClass.name -}}
{{- end -}}

{{- define "twokey.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the serving certificate. */}}
{{- define "twokey.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required when tls.mode is secret" .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "twokey.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The service's DNS name: what kube-apiserver checks the certificate against. */}}
{{- define "twokey.serviceHost" -}}
{{- printf "%s.%s.svc" (include "twokey.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Namespaces never sent to the webhook: the cluster's own and twokey's, always. */}}
{{- define "twokey.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq | toJson -}}
{{- end -}}

{{/* Where each issuer's JWKS is mounted in the pod. */}}
{{- define "twokey.jwksPath" -}}
{{- printf "/etc/twokey/issuers/issuer-%d.json" . -}}
{{- end -}}

{{/* Where the break-glass issuer's JWKS is mounted in the pod, beside the ordinary issuers'. */}}
{{- define "twokey.breakGlassJwksPath" -}}
/etc/twokey/issuers/break-glass.json
{{- end -}}

{{/*
Selector of the helm test pod, which the NetworkPolicy lets reach the webhook port. Not the
server's selector labels: the Service would send reviews to the test pod.
*/}}
{{- define "twokey.testPodSelector" -}}
app.kubernetes.io/name: {{ include "twokey.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The policy's exempt deleters, every role together, as a JSON list. */}}
{{- define "twokey.exemptDeleters" -}}
{{- $deleters := .Values.policy.exemptDeleters -}}
{{- if kindIs "map" $deleters -}}
{{- concat ($deleters.namespaceController | default list) ($deleters.garbageCollector | default list) | uniq | toJson -}}
{{- else -}}
{{- $deleters | toJson -}}
{{- end -}}
{{- end -}}

{{/*
Refuses a JWKS given in values that holds private or secret key material (d, p, q, dp, dq, qi, k):
rendered into a ConfigMap or Secret, it would hand the key to whoever may read them. Takes
(list "where" jwks).
*/}}
{{- define "twokey.publicOnly" -}}
{{- $where := index . 0 -}}
{{- range $i, $key := (index . 1).keys | default list -}}
{{- range $member := list "d" "p" "q" "dp" "dq" "qi" "k" -}}
{{- if hasKey $key $member -}}
{{- fail (printf "%s.keys[%d] holds private or secret key material (%s): give the public JWKS, never the private key" $where $i $member) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
