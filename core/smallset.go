package core

import "slices"

// smallSet is a set that is usually small: a session's joined rooms, a
// user channel's sessions. Up to smallSetMax members are kept in a slice
// (an idle connection then holds a few words instead of a map); beyond, a
// map keeps adds and removes constant-time for a 10,000-room connection
// or a 10,000-member room.
type smallSet[T comparable] struct {
	few  []T
	many map[T]struct{}
}

const smallSetMax = 8

func (r *smallSet[T]) has(v T) bool {
	if r.many != nil {
		_, ok := r.many[v]
		return ok
	}
	return slices.Contains(r.few, v)
}

// add adds v; adding a member again changes nothing.
func (r *smallSet[T]) add(v T) {
	switch {
	case r.many != nil:
		r.many[v] = struct{}{}
	case slices.Contains(r.few, v):
	case len(r.few) < smallSetMax:
		r.few = append(r.few, v)
	default:
		r.many = make(map[T]struct{}, 2*smallSetMax)
		for _, f := range r.few {
			r.many[f] = struct{}{}
		}
		r.many[v] = struct{}{}
		r.few = nil
	}
}

// del removes v and reports whether it was a member.
func (r *smallSet[T]) del(v T) bool {
	if r.many != nil {
		_, ok := r.many[v]
		delete(r.many, v)
		return ok
	}
	i := slices.Index(r.few, v)
	if i < 0 {
		return false
	}
	// Order does not matter: move the last member into the hole.
	last := len(r.few) - 1
	r.few[i] = r.few[last]
	var zero T
	r.few[last] = zero // no stale reference keeps a session alive
	r.few = r.few[:last]
	return true
}

func (r *smallSet[T]) len() int {
	if r.many != nil {
		return len(r.many)
	}
	return len(r.few)
}

// list returns the members, in no particular order, in a new slice.
func (r *smallSet[T]) list() []T {
	if r.many == nil {
		return slices.Clone(r.few)
	}
	out := make([]T, 0, len(r.many))
	for v := range r.many {
		out = append(out, v)
	}
	return out
}

func (r *smallSet[T]) reset() { r.few, r.many = nil, nil }
