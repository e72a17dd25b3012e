package probes

import (
	"sync"

	"github.com/cilium/ebpf/btf"
)

// KernelBTF shares the kernel's decoded BTF among the BPF loads of the
// agent's start. cilium/ebpf decodes it afresh for each load given no
// cache (its type and name indexes, ~14% of the start's CPU in all), and
// the families load a dozen collections side by side. Release drops it
// once they have: loads after that (discovery's, programs attached later)
// decode their own, and the agent does not keep the kernel's types for
// its lifetime. Nil shares nothing.
type KernelBTF struct {
	mu    sync.Mutex
	cache *btf.Cache
}

// NewKernelBTF returns a share for the loads to come.
func NewKernelBTF() *KernelBTF { return &KernelBTF{cache: btf.NewCache()} }

// Cache is what a load passes as ebpf.CollectionOptions.Cache: the shared
// cache, or nil (a cache of the load's own) once released.
func (k *KernelBTF) Cache() *btf.Cache {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cache
}

// Release drops the shared cache; safe twice.
func (k *KernelBTF) Release() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.cache = nil
	k.mu.Unlock()
}
