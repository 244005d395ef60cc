package core

import "slices"

// roomSet is a session's joined rooms. Most connections join a few, so
// up to roomSetSmall are kept in a slice (an idle connection then holds a
// few words instead of a map); beyond, a map keeps joins fast.
type roomSet struct {
	few  []string
	many map[string]struct{}
}

const roomSetSmall = 8

func (r *roomSet) has(room string) bool {
	if r.many != nil {
		_, ok := r.many[room]
		return ok
	}
	return slices.Contains(r.few, room)
}

// add adds room (callers check has first).
func (r *roomSet) add(room string) {
	switch {
	case r.many != nil:
		r.many[room] = struct{}{}
	case len(r.few) < roomSetSmall:
		r.few = append(r.few, room)
	default:
		r.many = make(map[string]struct{}, 2*roomSetSmall)
		for _, f := range r.few {
			r.many[f] = struct{}{}
		}
		r.many[room] = struct{}{}
		r.few = nil
	}
}

func (r *roomSet) del(room string) {
	if r.many != nil {
		delete(r.many, room)
		return
	}
	if i := slices.Index(r.few, room); i >= 0 {
		r.few = slices.Delete(r.few, i, i+1)
	}
}

func (r *roomSet) len() int {
	if r.many != nil {
		return len(r.many)
	}
	return len(r.few)
}

// list returns the rooms, in no particular order, in a new slice.
func (r *roomSet) list() []string {
	if r.many == nil {
		return slices.Clone(r.few)
	}
	out := make([]string, 0, len(r.many))
	for room := range r.many {
		out = append(out, room)
	}
	return out
}

func (r *roomSet) reset() { r.few, r.many = nil, nil }
