package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/tasks"
)

// events streams one execution's events to the view as Server-Sent Events,
// in the form of the API's event streams (httpapi.EventData): the stream
// entry ID as id, the event type as event. It ends after exit, or when the
// execution has none to wait for.
func (x *executions) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tasks.ValidateID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	from := r.Header.Get("Last-Event-ID")
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for ev, err := range x.client.Follow(r.Context(), id, from) {
		if err != nil {
			if r.Context().Err() == nil {
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"error": err.Error()}))
			}
			return
		}
		if err := writeEvent(w, ev); err != nil {
			return
		}
		flusher.Flush()
	}
}

// writeEvent writes ev as one Server-Sent Event, its data as the API's
// event streams carry it.
func writeEvent(w io.Writer, ev tasks.Event) error {
	data, err := httpapi.EventData(ev)
	if err != nil {
		return err
	}
	if ev.ID != "" {
		if _, err := fmt.Fprintf(w, "id: %s\n", ev.ID); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
	return err
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
