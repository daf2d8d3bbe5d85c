{{- define "kubegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Leaves room for the "-cluster" suffix within 63 characters. */}}
{{- define "kubegate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubegate.clusterName" -}}
{{- printf "%s-cluster" (include "kubegate.fullname" .) }}
{{- end }}

{{- define "kubegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels; call with (dict "root" $ "component" "node"). */}}
{{- define "kubegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubegate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kubegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubegate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kubegate.leaseName" -}}
{{- default (include "kubegate.clusterName" .) .Values.cluster.leaderElection.leaseName }}
{{- end }}

{{- define "kubegate.nodeHostPath" -}}
{{- default (printf "/var/lib/kubegate/%s-%s" .Release.Namespace .Release.Name) .Values.node.bufferVolume.hostPath }}
{{- end }}

{{/* Where the CA file of Elasticsearch's TLS is mounted. */}}
{{- define "kubegate.esCaDir" -}}/etc/kubegate/es-ca{{- end }}

{{/*
The config file of one instance; call with (dict "root" $ "mode" "node"|"cluster").
Secrets never appear here: they are ${VAR}s the container's env fills.
*/}}
{{- define "kubegate.config" -}}
{{- $v := .root.Values -}}
{{- $mode := .mode }}
{{- $es := $v.elasticsearch }}
{{- $rs := $v.renderSections -}}
global:
  scrape_interval: {{ $v.config.scrapeInterval }}
  scrape_timeout: {{ $v.config.scrapeTimeout }}
  data_dir: /var/lib/kubegate
  {{- with $v.config.externalLabels }}
  external_labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $rs.rules }}
  evaluation_interval: {{ $v.config.evaluationInterval }}
  {{- end }}
server:
  listen_address: "0.0.0.0:{{ $v.service.port }}"
  shutdown_grace_period: {{ $v.config.shutdownGracePeriod }}
  log_format: {{ $v.config.logFormat }}
  log_level: {{ $v.config.logLevel | quote }}
host_metrics:
  enabled: {{ and (eq $mode "node") $v.node.hostMetrics }}
{{- if eq $mode "cluster" }}
cluster:
  mode: cluster
  lease_name: {{ include "kubegate.leaseName" .root }}
  lease_namespace: {{ .root.Release.Namespace }}
  lease_duration: {{ $v.cluster.leaderElection.leaseDuration }}
  renew_deadline: {{ $v.cluster.leaderElection.renewDeadline }}
  retry_period: {{ $v.cluster.leaderElection.retryPeriod }}
{{- end }}
{{- if and (eq $mode "node") $rs.kubernetes }}
kubernetes:
  node_name: ${NODE_NAME}
{{- end }}
scrape_configs:
  - job_name: kubegate
    static_configs:
      - targets: ["127.0.0.1:{{ $v.service.port }}"]
        labels:
          kubegate_mode: {{ $mode }}
{{- if and (eq $mode "node") $v.node.annotatedPods (not $rs.kubernetes) }}
  # Pods on this node only: discovery reads NODE_NAME (downward API).
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_phase]
        action: drop
        regex: Pending|Succeeded|Failed
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme]
        action: replace
        regex: (https?)
        target_label: __scheme__
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $$1:$$2
        target_label: __address__
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
{{- end }}
{{- if and (eq $mode "cluster") $v.cluster.kubeStateMetrics.enabled }}
  - job_name: kube-state-metrics
    scrape_interval: {{ $v.cluster.kubeStateMetrics.scrapeInterval }}
    honor_labels: true
    kubernetes_sd_configs:
      - role: endpointslice
        {{- with $v.cluster.kubeStateMetrics.namespaces }}
        namespaces:
          names:
            {{- toYaml . | nindent 12 }}
        {{- end }}
        selectors:
          - role: endpointslice
            label: {{ $v.cluster.kubeStateMetrics.selector | quote }}
    relabel_configs:
      - source_labels: [__meta_kubernetes_endpointslice_port_name]
        action: keep
        regex: {{ $v.cluster.kubeStateMetrics.portName | quote }}
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
{{- end }}
{{- $extra := ternary $v.node.scrapeConfigs $v.cluster.scrapeConfigs (eq $mode "node") }}
{{- with $extra }}
  {{- toYaml . | nindent 2 }}
{{- end }}
buffer:
  type: {{ $v.buffer.type }}
  path: buffer
  max_size: {{ $v.buffer.maxSize }}
  fsync: {{ $v.buffer.fsync | quote }}
  when_full: {{ $v.buffer.whenFull }}
output:
  {{- if $es.enabled }}
  sink: elasticsearch
  elasticsearch:
    hosts:
      {{- toYaml $es.hosts | nindent 6 }}
    {{- if eq $es.auth.type "basic" }}
    username: ${ES_USERNAME}
    password: ${ES_PASSWORD}
    {{- else if eq $es.auth.type "apiKey" }}
    api_key: ${ES_API_KEY}
    {{- end }}
    {{- if or $es.tls.caSecret $es.tls.caConfigMap }}
    tls:
      ca_file: {{ include "kubegate.esCaDir" .root }}/{{ $es.tls.caKey }}
    {{- end }}
    {{- with $es.metricsIndex }}
    metrics_index: {{ . | quote }}
    {{- end }}
    {{- with $es.logsIndex }}
    logs_index: {{ . | quote }}
    {{- end }}
    bootstrap: {{ $es.bootstrap }}
    max_in_flight: {{ $es.maxInFlight }}
    batch_max_documents: {{ $es.batchMaxDocuments }}
    batch_max_bytes: {{ $es.batchMaxBytes }}
    batch_max_age: {{ $es.batchMaxAge }}
    request_timeout: {{ $es.requestTimeout }}
  {{- else }}
  sink: file
  {{- end }}
{{- if and (eq $mode "node") $v.beats.enabled $rs.beats }}
beats:
  listen_address: "0.0.0.0:{{ $v.beats.port }}"
{{- end }}
{{- if and (eq $mode "node") $rs.logMetrics $v.beats.logMetrics }}
log_metrics:
  {{- toYaml $v.beats.logMetrics | nindent 2 }}
{{- end }}
{{- if and $rs.push $v.push.enabled }}
push:
  {{- toYaml (omit $v.push "enabled") | nindent 2 }}
{{- end }}
{{- if and $rs.remoteWrite $v.remoteWrite }}
remote_write:
  {{- toYaml $v.remoteWrite | nindent 2 }}
{{- end }}
{{- if and (eq $mode "cluster") $rs.rules $v.rules.enabled }}
rule_files:
  - /etc/kubegate/rules/*.yaml
{{- with $v.alerting.alertmanagers }}
alerting:
  alertmanagers:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
{{- if and $rs.tsdb $v.tsdb.enabled }}
tsdb:
  retention: {{ $v.tsdb.retention }}
{{- end }}
{{- end }}

{{/* Environment of one instance; call with (dict "root" $ "mode" ...). */}}
{{- define "kubegate.env" -}}
{{- $v := .root.Values -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if $v.elasticsearch.enabled }}
{{- $secret := $v.elasticsearch.auth.existingSecret }}
{{- if eq $v.elasticsearch.auth.type "basic" }}
- name: ES_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.elasticsearch.auth.usernameKey }}
- name: ES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.elasticsearch.auth.passwordKey }}
{{- else if eq $v.elasticsearch.auth.type "apiKey" }}
- name: ES_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.elasticsearch.auth.apiKeyKey }}
{{- end }}
{{- end }}
{{- range $v.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The kubegate container; call with (dict "root" $ "mode" ...). */}}
{{- define "kubegate.container" -}}
{{- $v := .root.Values -}}
- name: kubegate
  image: {{ include "kubegate.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["run", "--config", "/etc/kubegate/config/kubegate.yaml"]
  env:
    {{- include "kubegate.env" . | nindent 4 }}
  ports:
    - name: http
      containerPort: {{ $v.service.port }}
      protocol: TCP
    {{- if and (eq .mode "node") $v.beats.enabled }}
    - name: beats
      containerPort: {{ $v.beats.port }}
      protocol: TCP
      {{- if $v.beats.hostPort.enabled }}
      hostPort: {{ $v.beats.hostPort.port }}
      {{- end }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /-/healthy
      port: http
    initialDelaySeconds: {{ $v.probes.liveness.initialDelaySeconds }}
    periodSeconds: {{ $v.probes.liveness.periodSeconds }}
    failureThreshold: {{ $v.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /-/ready
      port: http
    initialDelaySeconds: {{ $v.probes.readiness.initialDelaySeconds }}
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
  resources:
    {{- toYaml (ternary $v.node.resources $v.cluster.resources (eq .mode "node")) | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/kubegate/config
      readOnly: true
    - name: data
      mountPath: /var/lib/kubegate
    - name: tmp
      mountPath: /tmp
    {{- if or $v.elasticsearch.tls.caSecret $v.elasticsearch.tls.caConfigMap }}
    - name: es-ca
      mountPath: {{ include "kubegate.esCaDir" .root }}
      readOnly: true
    {{- end }}
    {{- if and (eq .mode "cluster") $v.renderSections.rules $v.rules.enabled }}
    - name: rules
      mountPath: /etc/kubegate/rules
      readOnly: true
    {{- end }}
{{- end }}

{{/* Volumes every instance has besides its data volume. */}}
{{- define "kubegate.commonVolumes" -}}
{{- $v := .root.Values -}}
- name: config
  configMap:
    name: {{ ternary (include "kubegate.fullname" .root) (include "kubegate.clusterName" .root) (eq .mode "node") }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if $v.elasticsearch.tls.caSecret }}
- name: es-ca
  secret:
    secretName: {{ $v.elasticsearch.tls.caSecret }}
    items:
      - key: {{ $v.elasticsearch.tls.caKey }}
        path: {{ $v.elasticsearch.tls.caKey }}
{{- else if $v.elasticsearch.tls.caConfigMap }}
- name: es-ca
  configMap:
    name: {{ $v.elasticsearch.tls.caConfigMap }}
    items:
      - key: {{ $v.elasticsearch.tls.caKey }}
        path: {{ $v.elasticsearch.tls.caKey }}
{{- end }}
{{- if and (eq .mode "cluster") $v.renderSections.rules $v.rules.enabled }}
- name: rules
  configMap:
    name: {{ include "kubegate.clusterName" .root }}-rules
{{- end }}
{{- end }}

{{/* A Prometheus duration in milliseconds (the schema has checked its syntax). */}}
{{- define "kubegate.durationMs" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 "w" 604800000 "y" 31536000000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" . }}
{{- $total = add $total (mul (atoi $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/* Checks across several values, which the schema cannot express. */}}
{{- define "kubegate.validate" -}}
{{- $v := .Values }}
{{- if and $v.elasticsearch.tls.caSecret $v.elasticsearch.tls.caConfigMap }}
{{- fail "elasticsearch.tls: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- if $v.cluster.enabled }}
{{- $le := $v.cluster.leaderElection }}
{{- $lease := include "kubegate.durationMs" $le.leaseDuration | atoi }}
{{- $renew := include "kubegate.durationMs" $le.renewDeadline | atoi }}
{{- $retry := include "kubegate.durationMs" $le.retryPeriod | atoi }}
{{- if not (lt $renew $lease) }}
{{- fail (printf "cluster.leaderElection: renewDeadline (%s) must be shorter than leaseDuration (%s), so a leader stops scraping before another replica may take over" $le.renewDeadline $le.leaseDuration) }}
{{- end }}
{{- if not (lt $retry $renew) }}
{{- fail (printf "cluster.leaderElection: retryPeriod (%s) must be shorter than renewDeadline (%s), or the leader gets no second try to renew" $le.retryPeriod $le.renewDeadline) }}
{{- end }}
{{- end }}
{{- $interval := include "kubegate.durationMs" $v.config.scrapeInterval | atoi }}
{{- $timeout := include "kubegate.durationMs" $v.config.scrapeTimeout | atoi }}
{{- if gt $timeout $interval }}
{{- fail (printf "config.scrapeTimeout (%s) is longer than config.scrapeInterval (%s)" $v.config.scrapeTimeout $v.config.scrapeInterval) }}
{{- end }}
{{- $grace := include "kubegate.durationMs" $v.config.shutdownGracePeriod | atoi }}
{{- range $mode := list "node" "cluster" }}
{{- $m := index $v $mode }}
{{- if and $m.enabled (ge $grace (mul $m.terminationGracePeriodSeconds 1000)) }}
{{- fail (printf "config.shutdownGracePeriod (%s) must be shorter than %s.terminationGracePeriodSeconds (%d s), or the kubelet kills kubegate while it still delivers" $v.config.shutdownGracePeriod $mode (int $m.terminationGracePeriodSeconds)) }}
{{- end }}
{{- end }}
{{- if not (or $v.node.enabled $v.cluster.enabled) }}
{{- fail "node.enabled and cluster.enabled are both false: nothing to install" }}
{{- end }}
{{- if and $v.beats.hostPort.enabled (not $v.beats.enabled) }}
{{- fail "beats.hostPort.enabled needs beats.enabled: true" }}
{{- end }}
{{- end }}
