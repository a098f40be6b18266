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

// A request may give a language and its code instead of an image and a
// command: the worker's catalogue (execq languages) says which image runs
// it, where the code goes and how it is run, with a compile step first
// where the language has one. Language "python" with Code "print(6*7)"
// prints 42 in execq-python; this example's in-memory worker runs sh.
func ExampleClient_Submit_language() {
	client, err := producer.Dial(demoRedis(), producer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	id, err := client.Submit(ctx, tasks.ExecRequest{
		Language: "sh",
		Code:     "echo hello from main.sh",
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	// Step is "compile" when a compile step failed: the program never ran,
	// and Stderr holds the compiler's messages.
	fmt.Print(res.Stdout)
	fmt.Println(res.Status, res.Step, res.Image)
	// Output:
	// hello from main.sh
	// succeeded run execq-sandbox:latest
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
