{{/* Chart name. */}}
{{- define "mlmodel-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: release-chart, unless the release name already holds the chart name. */}}
{{- define "mlmodel-operator.fullname" -}}
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

{{- define "mlmodel-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlmodel-operator.labels" -}}
helm.sh/chart: {{ include "mlmodel-operator.chart" . }}
{{ include "mlmodel-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlmodel-operator
{{- end }}

{{- define "mlmodel-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlmodel-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlmodel-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlmodel-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease that elects the active replica. */}}
{{- define "mlmodel-operator.leaseName" -}}
{{- default (include "mlmodel-operator.fullname" .) (dig "leaderElection" "leaseName" "" .Values.config) }}
{{- end }}

{{/* The operator's config file: the values' config, plus what the chart decides (lease name and namespace; the
operator's own pods as a NetworkPolicy peer of the metrics port unless networkPolicy.operator is given). */}}
{{- define "mlmodel-operator.config" -}}
{{- $le := merge (dict "leaseName" (include "mlmodel-operator.leaseName" .) "leaseNamespace" .Release.Namespace) (default dict .Values.config.leaderElection) }}
{{- $_ := set $le "leaseName" (include "mlmodel-operator.leaseName" .) }}
{{- $_ := set $le "leaseNamespace" .Release.Namespace }}
{{- $np := deepCopy (default dict .Values.config.networkPolicy) }}
{{- if not (hasKey $np "operator") }}
{{- /* The operator scrapes the runtime pods' metrics port for canary analysis: its own pods may reach it. */}}
{{- $_ := set $np "operator" (list (dict "namespace" .Release.Namespace "podLabels" (dict "app.kubernetes.io/name" (include "mlmodel-operator.name" .) "app.kubernetes.io/instance" .Release.Name))) }}
{{- end }}
{{- toYaml (merge (dict "leaderElection" $le "networkPolicy" $np) (omit .Values.config "leaderElection" "networkPolicy")) }}
{{- end }}

{{/* The rules the operator needs on the namespaces it serves: what it reads, what it writes, nothing more. */}}
{{- define "mlmodel-operator.modelRules" -}}
# MLModels: kopf watches them and patches its annotations and finalizer; the operator writes status only.
- apiGroups: [serving.mlmodel.io]
  resources: [mlmodels]
  verbs: [get, list, watch, patch]
- apiGroups: [serving.mlmodel.io]
  resources: [mlmodels/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement is on.
- apiGroups: [serving.mlmodel.io]
  resources: [mlmodels/finalizers]
  verbs: [update]
# The runtime Deployment and Service: server-side apply (create + patch); the model's own are deleted by the
# garbage collector, a canary's candidate Deployment (<model>-canary) by the operator when the canary ends.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
# A canary with shadow traffic: the ConfigMap the model's runtimes follow (docs/canary.md), deleted with its
# candidate's Service when the canary ends.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch, delete]
# config.canary.gateway: the model's HTTPRoute (Gateway API), weighted during a canary.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, create, patch, delete]
# Observing the rollout (the Deployment's status and its pods).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# The credentials Secret named by a model: get by name only, never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# spec.autoscaling (docs/autoscaling.md): its ScaledObject or HPA (applied, read, deleted when autoscaling goes),
# and spec.replicas set once through the scale subresource when autoscaling starts without it.
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
- apiGroups: [serving.mlmodel.io]
  resources: [mlmodels/scale]
  verbs: [patch]
# spec.auth KubernetesTokens (docs/access.md): each such model's token reviewer ServiceAccount
# (<model>-token-reviewer, read every pass, applied, deleted when auth goes); spec.networkPolicy / the
# networkPolicy config: each model's NetworkPolicy (read every pass, applied, deleted when turned off).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
{{- end }}
