package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// pollWait is the wait of each long-poll: below the server's 55 s cap, and
// a poll that times out empty is simply repeated.
const pollWait = "25s"

// subscribePoll is a long-poll subscriber: a first GET /poll?wait=0 gets
// the cursor at the log's head (so the subscription is live when it
// returns), then a goroutine loops GET /poll with the previous answer's
// cursor over one keep-alive connection from src. Every load message in an
// answer counts as delivered when the answer has been read.
func subscribePoll(ctx context.Context, f *fleet, t target, r subReq) error {
	tr := &http.Transport{DialContext: f.countedDial(r), DisableCompression: true, MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr}
	base := fmt.Sprintf("http://%s/poll?rooms=%s&user=%s", t.host, url.QueryEscape(r.rooms), url.QueryEscape(r.user))
	// The polls outlive ctx (the dial phase): they end at closeAll.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	body, err := poll(pctx, client, base+"&wait=0", nil)
	if err != nil {
		cancel()
		tr.CloseIdleConnections()
		return err
	}
	if bytes.Contains(body, []byte(`"errors":`)) {
		cancel()
		tr.CloseIdleConnections()
		return fmt.Errorf("%s: the server refused a room: %.300s", base, body)
	}
	cursor := pollCursor(body)
	f.add(closerFunc(func() error { cancel(); return nil }))
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		defer tr.CloseIdleConnections()
		buf := make([]byte, 0, 16<<10)
		for {
			u := base + "&wait=" + pollWait
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			b, err := poll(pctx, client, u, buf[:0])
			if err != nil {
				if pctx.Err() == nil {
					f.end(r.shard, err)
				}
				return
			}
			buf = b
			f.rec.messages(r.shard, b, time.Now().UnixNano())
			if c := pollCursor(b); c != "" {
				cursor = c
			}
		}
	}()
	return nil
}

// poll GETs u and returns the body read into buf; any status but 200 is an
// error.
func poll(ctx context.Context, client *http.Client, u string, buf []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	buf, err = readAll(resp.Body, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s: %.300s", u, resp.Status, buf)
	}
	return buf, nil
}

var markCursor = []byte(`"cursor":"`)

// pollCursor returns the answer's cursor. The answer is one JSON object
// whose messages come first and no load payload holds `"cursor":"`, so
// the last one is the field. Ids are opaque but need no JSON escaping.
func pollCursor(body []byte) string {
	i := bytes.LastIndex(body, markCursor)
	if i < 0 {
		return ""
	}
	rest := body[i+len(markCursor):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
