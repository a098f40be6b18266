package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// An agent submits a command, prints its output as it happens, and reads
// the result.
func Example() {
	// Your Redis URL; here, one served by a worker made for this example.
	url := demoRedis()

	client, err := producer.Dial(url, producer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	id, err := client.Submit(ctx, tasks.ExecRequest{
		Cmd:     []string{"echo", "hello from the sandbox"},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	for ev, err := range client.Follow(ctx, id, "") {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == tasks.EventStdout {
			os.Stdout.Write(ev.Data)
		}
	}
	res, err := client.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.ExitCode)
	// Output:
	// hello from the sandbox
	// succeeded 0
}

// Cancel stops an execution, queued or running; its result says so.
func ExampleClient_Cancel() {
	client, err := producer.Dial(demoRedis(), producer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	if err != nil {
		log.Fatal(err)
	}
	// Wait until it runs, then cancel it.
	for ev, err := range client.Follow(ctx, id, "") {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == tasks.EventStarted {
			break
		}
	}
	if err := client.Cancel(ctx, id); err != nil {
		log.Fatal(err)
	}
	res, err := client.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status)
	// Output:
	// canceled
}
