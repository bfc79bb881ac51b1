// Package rerun sends stored orders through the plugins again, from the
// command line rather than from the daemon's source: a backfill runs one
// plugin over every order it has not processed, and a replay sends dead
// letters back. Both feed an engine.Engine, the path live orders take, so
// the done markers in the order hashes keep every (plugin, order) pair
// exactly once, also while the daemon runs next to them.
package rerun

import (
	"context"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pipeline"
)

// Counts is what the pipeline did with the (plugin, order) pairs it was
// given. A pair ends in exactly one of them, except that an effect Redis
// refuses half way counts the pair as applied and as dead-lettered.
type Counts struct {
	Applied      int // effects applied and the done marker set
	AlreadyDone  int // the done marker was set already: nothing written
	DeadLettered int // sent to the dead-letter stream (again)
}

// Finished is how many pairs have an outcome.
func (c Counts) Finished() int { return c.Applied + c.AlreadyDone + c.DeadLettered }

// countsOf is what the pipeline of a run reported. Every run starts an
// engine, and so a pipeline, of its own: the counts are this run's pairs and
// nothing else.
func countsOf(s pipeline.Snapshot) Counts {
	return Counts{
		Applied:      int(s.AppliedTotal()),
		AlreadyDone:  int(s.AlreadyDone),
		DeadLettered: int(s.DeadLettered),
	}
}

// Progress hears how a run goes. Its methods are called from one goroutine.
type Progress interface {
	// Start is called once, before the first order is sent, with how
	// many there are.
	Start(total int)
	// Update is called every progressTick with how many are finished.
	Update(finished int)
	// Finish is called once, when the run ends.
	Finish(finished int)
}

// progressTick is how often Progress.Update is called.
const progressTick = 200 * time.Millisecond

// drive sends refs through eng's pipeline, one at a time so that at most one
// batch is gathered ahead, until all are sent or stop ends. Then it closes
// the intake and waits for the pipeline to finish what it took, retries
// included: stopping does not abandon a batch half way. It returns how many
// refs were sent.
func drive(stop context.Context, eng *engine.Engine, refs []orders.Ref, p Progress) (sent int, err error) {
	in := make(chan orders.Ref)
	ran := make(chan struct{})
	var feeder sync.WaitGroup
	feeder.Add(1)
	go func() {
		defer feeder.Done()
		defer close(in)
		for _, r := range refs {
			select {
			case in <- r:
				sent++
			case <-stop.Done():
				return
			case <-ran: // the pipeline failed
				return
			}
		}
	}()

	p.Start(len(refs))
	ticks := time.NewTicker(progressTick)
	defer ticks.Stop()
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		for {
			select {
			case <-ticks.C:
				p.Update(countsOf(eng.Pipeline.Outcomes()).Finished())
			case <-ran:
				return
			}
		}
	}()

	// The pipeline outlives stop: what it took is finished.
	err = eng.Pipeline.Run(context.WithoutCancel(stop), in)
	close(ran)
	feeder.Wait()
	<-reported
	p.Finish(countsOf(eng.Pipeline.Outcomes()).Finished())
	return sent, err
}

// silent is a Progress that shows nothing.
type silent struct{}

func (silent) Start(int)  {}
func (silent) Update(int) {}
func (silent) Finish(int) {}
