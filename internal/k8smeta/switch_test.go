package k8smeta

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEnabled(t *testing.T) {
	ns := func(v string) *corev1.Namespace {
		if v == "-" {
			return nil
		}
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: v}}}
	}
	pod := func(v string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: v}}}
	}
	for _, tc := range []struct {
		ns, pod string
		want    bool
	}{
		{"", "", false}, {"enabled", "", true}, {"enabled", "disabled", false},
		{"", "enabled", true}, {"-", "enabled", true}, {"-", "", false},
		{"Enabled", "", false}, {"enabled", "bogus", true}, {"disabled", "", false},
	} {
		if got := Enabled(ns(tc.ns), pod(tc.pod)); got != tc.want {
			t.Errorf("namespace %q, pod %q: %v, want %v", tc.ns, tc.pod, got, tc.want)
		}
	}
}
