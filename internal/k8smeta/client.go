package k8smeta

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// Client reads the few API groups the Store watches: core/v1, apps/v1
// and batch/v1. It stands in for client-go's kubernetes.Clientset, whose
// packages (and k8s.io/client-go/kubernetes/scheme, which every typed
// client imports) register every API group at init: linking them roughly
// doubled the agent's idle RSS and binary size.
type Client struct {
	core, apps, batch *rest.RESTClient
	params            runtime.ParameterCodec
}

// NewClient makes a Client from cfg (which it does not modify). Like
// kubernetes.NewForConfig, its REST clients share one HTTP client (one
// connection pool) and, when cfg sets QPS, one rate limiter.
func NewClient(cfg *rest.Config) (*Client, error) {
	scheme := runtime.NewScheme()
	// Each AddToScheme also registers, through metav1.AddToGroupVersion,
	// its group's ListOptions and WatchEvent and the unversioned Status:
	// what the parameter codec, the watch decoder and error responses
	// need. (client-go's kubernetes/scheme adds metav1 under "v1" once
	// more; corev1's AddToScheme already has.)
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("k8smeta: scheme: %w", err)
		}
	}
	base := *cfg
	if base.UserAgent == "" {
		base.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&base)
	if err != nil {
		return nil, fmt.Errorf("k8smeta: HTTP client: %w", err)
	}
	if base.RateLimiter == nil && base.QPS > 0 {
		if base.Burst <= 0 {
			return nil, fmt.Errorf("k8smeta: Burst must be > 0 when QPS is set and RateLimiter is not")
		}
		base.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(base.QPS, base.Burst)
	}
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	restClient := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := base
		c.GroupVersion = &gv
		c.APIPath = apiPath
		c.NegotiatedSerializer = codecs
		rc, err := rest.RESTClientForConfigAndClient(&c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("k8smeta: %s client: %w", gv, err)
		}
		return rc, nil
	}
	c := &Client{params: runtime.NewParameterCodec(scheme)}
	if c.core, err = restClient(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if c.apps, err = restClient(appsv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if c.batch, err = restClient(batchv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return c, nil
}

// Ready asks the API server's /readyz.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.core.Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// resource lists and watches one resource across all namespaces, as the
// generated typed clients do (protobuf unless the config chose a content
// type; the request times out with the options' TimeoutSeconds).
type resource struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
	name   string                    // e.g. "pods"
	list   func() runtime.Object     // a new, empty list of it
	tweak  func(*metav1.ListOptions) // may be nil
}

func (r resource) List(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	if r.tweak != nil {
		r.tweak(&opts)
	}
	list := r.list()
	err := r.rc.Get().UseProtobufAsDefault().Resource(r.name).VersionedParams(&opts, r.params).
		Timeout(timeout(opts)).Do(ctx).Into(list)
	if err != nil {
		return nil, err
	}
	return list, nil
}

func (r resource) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if r.tweak != nil {
		r.tweak(&opts)
	}
	opts.Watch = true
	return r.rc.Get().UseProtobufAsDefault().Resource(r.name).VersionedParams(&opts, r.params).
		Timeout(timeout(opts)).Watch(ctx)
}

func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
