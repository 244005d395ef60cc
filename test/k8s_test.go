package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/edge/config"
)

// The Kubernetes manifests in docs/deploy/k8s are checked without a
// cluster and without schemas from the network: every YAML document is
// decoded into the typed structs of k8s.io/api the way the API server
// decodes it (case-sensitive field names, unknown and duplicate fields
// rejected), then the parts that make the edge work are checked against
// each other and against the edge's own flags.

const k8sDir = "../docs/deploy/k8s"

// k8sManifests is every object found in k8sDir, by kind.
type k8sManifests struct {
	kustomization *kustomization
	deployments   []*appsv1.Deployment
	services      []*corev1.Service
	configMaps    []*corev1.ConfigMap
	secrets       []*corev1.Secret
	pdbs          []*policyv1.PodDisruptionBudget
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
	ingresses     []*networkingv1.Ingress
	files         []string // base names of the *.yaml files
}

// kustomization holds the fields of kustomize's Kustomization that the
// manifests use; decoding is strict, so any other field fails until it is
// added here (kustomize's own types module is not worth the dependency).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// decodeStrict converts one YAML document to JSON and decodes it into v as
// the API server would: case-sensitive, unknown or duplicate fields are
// errors, and so are wrong types.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeObject decodes one document by its apiVersion and kind into m.
func (m *k8sManifests) decodeObject(doc []byte) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var tm metav1.TypeMeta
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return err
	}
	into := func(v any) error { return decodeStrict(doc, v) }
	var name string
	switch tm.APIVersion + " " + tm.Kind {
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		if m.kustomization != nil {
			return errors.New("a second Kustomization")
		}
		m.kustomization = new(kustomization)
		return into(m.kustomization)
	case "apps/v1 Deployment":
		o := new(appsv1.Deployment)
		err, name = into(o), o.Name
		m.deployments = append(m.deployments, o)
	case "v1 Service":
		o := new(corev1.Service)
		err, name = into(o), o.Name
		m.services = append(m.services, o)
	case "v1 ConfigMap":
		o := new(corev1.ConfigMap)
		err, name = into(o), o.Name
		m.configMaps = append(m.configMaps, o)
	case "v1 Secret":
		o := new(corev1.Secret)
		err, name = into(o), o.Name
		m.secrets = append(m.secrets, o)
	case "policy/v1 PodDisruptionBudget":
		o := new(policyv1.PodDisruptionBudget)
		err, name = into(o), o.Name
		m.pdbs = append(m.pdbs, o)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := new(autoscalingv2.HorizontalPodAutoscaler)
		err, name = into(o), o.Name
		m.hpas = append(m.hpas, o)
	case "networking.k8s.io/v1 Ingress":
		o := new(networkingv1.Ingress)
		err, name = into(o), o.Name
		m.ingresses = append(m.ingresses, o)
	default:
		return fmt.Errorf("apiVersion %q kind %q: not a kind this test knows; add it to decodeObject", tm.APIVersion, tm.Kind)
	}
	if err == nil && name == "" {
		err = fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return err
}

// loadK8s reads and strictly decodes every document of every *.yaml file.
func loadK8s(t *testing.T) *k8sManifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s (%v)", k8sDir, err)
	}
	m := new(k8sManifests)
	for _, p := range paths {
		m.files = append(m.files, filepath.Base(p))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", p, i, err)
			}
			if j, err := yaml.YAMLToJSON(doc); err == nil && string(j) == "null" {
				continue // comments only
			}
			if err := m.decodeObject(doc); err != nil {
				t.Errorf("%s: document %d: %v", p, i, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// edgeFlags returns the edge's flag names by environment variable, from
// its own --help (the same text the binary prints).
func edgeFlags(t *testing.T) map[string]string {
	t.Helper()
	var help bytes.Buffer
	if _, err := config.Load([]string{"--help"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("config.Load --help: no error")
	}
	line := regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \((SWITCHBOARD_[A-Z0-9_]+)\)$`)
	flags := make(map[string]string)
	for _, sub := range line.FindAllStringSubmatch(help.String(), -1) {
		if got := config.EnvName(sub[1]); got != sub[2] {
			t.Fatalf("--help names %s for --%s, config.EnvName says %s", sub[2], sub[1], got)
		}
		flags[sub[2]] = sub[1]
	}
	if flags["SWITCHBOARD_SHUTDOWN_TIMEOUT"] == "" || len(flags) < 20 {
		t.Fatalf("parsed %d flags from --help; the format changed?\n%s", len(flags), help.String())
	}
	return flags
}

// TestK8sDecoderRejects proves the strict decoding catches the mistakes it
// is here for, so a passing TestK8sManifests means something.
func TestK8sDecoderRejects(t *testing.T) {
	bad := map[string]string{
		"unknown field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"wrong case":       "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: 8080}]}\n",
		"wrong type":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n",
		"duplicate field":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: b}\ndata: {C: d}\n",
		"unknown kind":     "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n",
		"wrong apiVersion": "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n",
		"no name":          "apiVersion: v1\nkind: ConfigMap\ndata: {A: b}\n",
		"kustomize field":  "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n",
	}
	for name, doc := range bad {
		if err := new(k8sManifests).decodeObject([]byte(doc)); err == nil {
			t.Errorf("%s: accepted:\n%s", name, doc)
		}
	}
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPort: http}]}\n"
	if err := new(k8sManifests).decodeObject([]byte(good)); err != nil {
		t.Errorf("good document refused: %v", err)
	}
}

func TestK8sManifests(t *testing.T) {
	m := loadK8s(t)
	flags := edgeFlags(t)

	t.Run("kustomization lists every manifest", func(t *testing.T) {
		k := m.kustomization
		if k == nil {
			t.Fatal("no kustomization.yaml")
		}
		var want []string
		for _, f := range m.files {
			if f != "kustomization.yaml" {
				want = append(want, f)
			}
		}
		got := slices.Sorted(slices.Values(k.Resources))
		if !slices.Equal(got, want) {
			t.Errorf("resources %v, files %v", got, want)
		}
		for _, img := range k.Images {
			found := false
			for _, d := range m.deployments {
				for _, c := range d.Spec.Template.Spec.Containers {
					found = found || imageName(c.Image) == img.Name
				}
			}
			if !found {
				t.Errorf("images: %q matches no container image, so the override does nothing", img.Name)
			}
		}
	})

	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(m.deployments))
	}
	d := m.deployments[0]
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers, want 1", d.Name, len(pod.Containers))
	}
	c := pod.Containers[0]
	env := containerEnv(t, m, c)

	// The port the edge listens on: SWITCHBOARD_ADDR from the manifests,
	// else the image's ENV (Dockerfile), else the flag's default.
	addr := env["SWITCHBOARD_ADDR"]
	if addr == "" {
		addr = dockerfileEnv(t, "SWITCHBOARD_ADDR")
	}
	if addr == "" {
		addr = config.Default().Addr
	}
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SWITCHBOARD_ADDR %q: %v", addr, err)
	}
	listenPort, _ := strconv.Atoi(portStr)

	t.Run("image and port", func(t *testing.T) {
		if imageName(c.Image) != "switchboard" {
			t.Errorf("image %q, want switchboard[:tag] (docker build -t switchboard .)", c.Image)
		}
		if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != listenPort {
			t.Errorf("container ports %+v, want exactly the edge's %d (SWITCHBOARD_ADDR %q)", c.Ports, listenPort, addr)
		}
	})

	t.Run("selector matches pod labels", func(t *testing.T) {
		sel := d.Spec.Selector
		if sel == nil || len(sel.MatchLabels) == 0 {
			t.Fatal("Deployment without spec.selector.matchLabels")
		}
		if !subset(sel.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("selector %v does not select template labels %v", sel.MatchLabels, d.Spec.Template.Labels)
		}
		if len(sel.MatchExpressions) != 0 {
			t.Error("matchExpressions: not checked by this test; use matchLabels")
		}
	})

	t.Run("probes", func(t *testing.T) {
		checkProbe(t, "readinessProbe", c.ReadinessProbe, "/readyz", c, listenPort)
		checkProbe(t, "livenessProbe", c.LivenessProbe, "/healthz", c, listenPort)
	})

	shutdown := config.Default().ShutdownTimeout
	if v := env["SWITCHBOARD_SHUTDOWN_TIMEOUT"]; v != "" {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SWITCHBOARD_SHUTDOWN_TIMEOUT %q: %v", v, err)
		}
	}

	t.Run("drain fits the grace period", func(t *testing.T) {
		var preStop time.Duration
		if lc := c.Lifecycle; lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil {
			t.Error("no lifecycle.preStop.sleep: endpoints would still route to a pod that stopped accepting")
		} else {
			preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
			if lc.PreStop.Exec != nil {
				t.Error("preStop exec: the distroless image has no shell and no sleep binary")
			}
		}
		if pod.TerminationGracePeriodSeconds == nil {
			t.Fatal("no terminationGracePeriodSeconds (default 30s is implicit)")
		}
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		if grace <= preStop+shutdown {
			t.Errorf("terminationGracePeriodSeconds %s must exceed preStop %s + shutdown timeout %s", grace, preStop, shutdown)
		}
		if p := c.LivenessProbe; p != nil {
			if kill := time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second; kill <= shutdown {
				t.Errorf("liveness kills after %s of failures, within the %s drain (a draining edge stops answering)", kill, shutdown)
			}
		}
	})

	t.Run("security context", func(t *testing.T) {
		sc := c.SecurityContext
		psc := pod.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Error("runAsNonRoot not set")
		}
		if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
			t.Error("runAsUser 0")
		}
		if sc == nil {
			t.Fatal("no container securityContext")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation not false")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) != 0 {
			t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
		}
	})

	t.Run("resources", func(t *testing.T) {
		r := c.Resources
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := r.Requests[res]
			lim, okLim := r.Limits[res]
			if !okReq || !okLim {
				t.Errorf("%s: request %v, limit %v; want both", res, okReq, okLim)
				continue
			}
			if req.Cmp(lim) > 0 {
				t.Errorf("%s: request %s above limit %s", res, req.String(), lim.String())
			}
		}
	})

	t.Run("SWITCHBOARD variables are real flags", func(t *testing.T) {
		for _, src := range envSources(m, c) {
			for key := range src.keys {
				if _, ok := flags[key]; !ok {
					t.Errorf("%s: %s is not a flag of the edge (switchboard --help)", src.name, key)
				}
			}
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "SWITCHBOARD_") {
				if _, ok := flags[e.Name]; !ok {
					t.Errorf("env: %s is not a flag of the edge", e.Name)
				}
			}
		}
	})

	t.Run("edge accepts the settings", func(t *testing.T) {
		getenv := func(k string) string { return env[k] }
		if _, err := config.Load(nil, getenv, io.Discard); err == nil {
			t.Error("the committed placeholders load: an unedited Secret would run with a known JWT secret or API key")
		}
		real := maps.Clone(env)
		for _, s := range m.secrets {
			for k, v := range secretData(s) {
				if strings.Contains(v, "CHANGE-ME") {
					real[k] = strings.ReplaceAll(v, "CHANGE-ME", "0123456789abcdef0123456789abcdef")
				}
			}
		}
		cfg, err := config.Load(nil, func(k string) string { return real[k] }, io.Discard)
		if err != nil {
			t.Fatalf("with the placeholders filled in: %v", err)
		}
		if cfg.Broker.Name == "memory" {
			t.Error("broker memory: each pod would be alone; use redis, kafka or nats")
		}
	})

	t.Run("service targets the container port", func(t *testing.T) {
		if len(m.services) != 1 {
			t.Fatalf("%d Services, want 1", len(m.services))
		}
		s := m.services[0]
		if len(s.Spec.Selector) == 0 || !subset(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service selector %v does not select pod labels %v", s.Spec.Selector, d.Spec.Template.Labels)
		}
		if len(s.Spec.Ports) == 0 {
			t.Fatal("Service without ports")
		}
		for _, p := range s.Spec.Ports {
			if got := resolvePort(c, p.TargetPort); got != listenPort {
				t.Errorf("Service port %d targets %s (%d), want container port %d", p.Port, p.TargetPort.String(), got, listenPort)
			}
		}
		if s.Spec.SessionAffinity != "" && s.Spec.SessionAffinity != corev1.ServiceAffinityNone {
			t.Errorf("sessionAffinity %s: any pod serves any client; affinity only unbalances", s.Spec.SessionAffinity)
		}
	})

	t.Run("pdb selects the pods", func(t *testing.T) {
		if len(m.pdbs) != 1 {
			t.Fatalf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
		}
		p := m.pdbs[0]
		if p.Spec.Selector == nil || len(p.Spec.Selector.MatchLabels) == 0 || !subset(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("PDB selector %v does not select pod labels %v", p.Spec.Selector, d.Spec.Template.Labels)
		}
		if (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			t.Error("PDB needs exactly one of maxUnavailable and minAvailable")
		}
	})

	t.Run("hpa scales the deployment on cpu", func(t *testing.T) {
		if len(m.hpas) != 1 {
			t.Fatalf("%d HorizontalPodAutoscalers, want 1", len(m.hpas))
		}
		h := m.hpas[0]
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			t.Errorf("scaleTargetRef %+v, want apps/v1 Deployment %s", ref, d.Name)
		}
		cpu := false
		for _, mt := range h.Spec.Metrics {
			if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
				mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			t.Error("no CPU utilization metric")
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Error("CPU utilization needs a CPU request on the container")
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("minReplicas %v, maxReplicas %d: want at least 2 (a drain needs another pod) and max >= min", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if d.Spec.Replicas != nil {
			t.Error("Deployment sets replicas: every apply would reset the autoscaler's count")
		}
	})

	t.Run("ingress for websocket and sse", func(t *testing.T) {
		if len(m.ingresses) != 1 {
			t.Fatalf("%d Ingresses, want 1", len(m.ingresses))
		}
		in := m.ingresses[0]
		if in.Spec.IngressClassName == nil || *in.Spec.IngressClassName != "nginx" {
			t.Error("ingressClassName is not nginx (the annotations are ingress-nginx's)")
		}
		a := in.Annotations
		for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
			v := a["nginx.ingress.kubernetes.io/"+k]
			if n, err := strconv.Atoi(v); err != nil || n < 300 {
				t.Errorf("%s %q: want seconds, at least 300 (idle WebSockets and SSE streams; default 60)", k, v)
			}
		}
		if v := a["nginx.ingress.kubernetes.io/proxy-buffering"]; v != "off" {
			t.Errorf("proxy-buffering %q, want off (SSE)", v)
		}
		backends := 0
		for _, rule := range in.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				backends++
				svc := p.Backend.Service
				if svc == nil || svc.Name != m.services[0].Name {
					t.Errorf("path %s: backend %+v, want Service %s", p.Path, p.Backend, m.services[0].Name)
					continue
				}
				if !servicePortExists(m.services[0], svc.Port) {
					t.Errorf("path %s: Service port %+v does not exist", p.Path, svc.Port)
				}
			}
		}
		if backends == 0 {
			t.Error("Ingress routes nothing")
		}
	})
}

// envSource is one envFrom source and the keys it injects.
type envSource struct {
	name string
	keys map[string]string
}

// envSources resolves the container's envFrom to the ConfigMaps and
// Secrets in the manifests; a reference to one that is not there fails.
func envSources(m *k8sManifests, c corev1.Container) []envSource {
	var out []envSource
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			src := envSource{name: "ConfigMap " + ef.ConfigMapRef.Name}
			for _, cm := range m.configMaps {
				if cm.Name == ef.ConfigMapRef.Name {
					src.keys = cm.Data
				}
			}
			out = append(out, src)
		case ef.SecretRef != nil:
			src := envSource{name: "Secret " + ef.SecretRef.Name}
			for _, s := range m.secrets {
				if s.Name == ef.SecretRef.Name {
					src.keys = secretData(s)
				}
			}
			out = append(out, src)
		}
	}
	return out
}

// containerEnv is the environment the container sees from the manifests:
// envFrom in order, then env with literal values.
func containerEnv(t *testing.T, m *k8sManifests, c corev1.Container) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for i, src := range envSources(m, c) {
		if src.keys == nil && !optional(c.EnvFrom[i]) {
			t.Fatalf("envFrom %s: not in %s", src.name, k8sDir)
		}
		if c.EnvFrom[i].Prefix != "" {
			t.Fatalf("envFrom %s: prefix %q is not checked by this test", src.name, c.EnvFrom[i].Prefix)
		}
		maps.Copy(env, src.keys)
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func optional(ef corev1.EnvFromSource) bool {
	if ef.ConfigMapRef != nil && ef.ConfigMapRef.Optional != nil {
		return *ef.ConfigMapRef.Optional
	}
	if ef.SecretRef != nil && ef.SecretRef.Optional != nil {
		return *ef.SecretRef.Optional
	}
	return false
}

// secretData merges data (decoded) and stringData, as the API server does.
func secretData(s *corev1.Secret) map[string]string {
	out := make(map[string]string)
	for k, v := range s.Data {
		out[k] = string(v)
	}
	maps.Copy(out, s.StringData)
	return out
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string, c corev1.Container, port int) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe on %s", what, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %q, want %s", what, p.HTTPGet.Path, path)
	}
	if got := resolvePort(c, p.HTTPGet.Port); got != port {
		t.Errorf("%s: port %s (%d), want the container port %d", what, p.HTTPGet.Port.String(), got, port)
	}
	if p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("%s: scheme %s; the edge serves plain HTTP here", what, p.HTTPGet.Scheme)
	}
}

// resolvePort turns a number or a named container port into a number (0
// when the name is unknown).
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func servicePortExists(s *corev1.Service, p networkingv1.ServiceBackendPort) bool {
	for _, sp := range s.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// imageName strips the tag or digest: registry.example.com:5000/switchboard:v1 → registry.example.com:5000/switchboard.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// dockerfileEnv reads ENV name=value from the repository's Dockerfile.
func dockerfileEnv(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^ENV ` + regexp.QuoteMeta(name) + `=(\S+)`)
	if sub := re.FindSubmatch(data); sub != nil {
		return strings.Trim(string(sub[1]), `"`)
	}
	return ""
}
