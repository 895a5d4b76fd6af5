package faultgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Every round of a backend with Share draws two core sharing workers,
// direct, on the round's limit at READ COMMITTED and without a HotSpot, so that every
// round shares; the sharing workers' whole transactions take ShareCommits
// and none of the options it refuses, and their ReadOnly reads do not
// take it: pgxdb builds each drawn plan without a refusal.
func TestFaultSharingDraw(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none") // never connects: plans are only built
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	be := (&PGRound{Tables: NewPGTables("draw")}).Backend("draw", false)
	be.Cockroach, be.SavepointLock, be.Share = true, true, true
	share := pgxdb.ShareCommits()
	var refused []string
	be.InTx = func(w int, fn func(ctx context.Context, tx GenTx) (Result, error), o TxOpts) dbop.Op[Result] {
		txo := pgxOptions.Of(o, be)
		if o.Cockroach > 0 {
			txo = append(txo, pgxdb.CockroachRestart(dbop.MaxAttempts(o.Cockroach)))
		}
		if o.Share {
			txo = append(txo, share)
		}
		defer func() {
			if r := recover(); r != nil {
				if o.Share {
					refused = append(refused, fmt.Sprintf("%v: %v", o, r))
				}
				panic(r)
			}
		}()
		return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (Result, error) { return fn(ctx, pgxGenTx{tx}) }, txo...)
	}
	for seed := range uint64(200) {
		sh := newGenShared()
		sh.sharing = drawSharing(rand.New(rand.NewPCG(seed, 2<<32)), be)
		var core int
		for w := range NumWorkers {
			if sh.sharing.core[w] {
				core++
				if !sh.sharing.workers[w] || Proxied(w) {
					t.Errorf("seed %d: core worker %d: sharing %v, proxied %v; want a direct sharing worker", seed, w, sh.sharing.workers[w], Proxied(w))
				}
			}
			p := drawPlan(t, rand.New(rand.NewPCG(seed, 1<<32+uint64(w))), w, be, sh, NewStats())
			if p.tx.Share != sh.sharing.workers[w] {
				t.Errorf("seed %d, worker %d: drew %v; sharing %v", seed, w, p.tx, sh.sharing.workers[w])
			}
			if Proxied(w) && p.tx.Share && !p.tx.ShareProxied {
				t.Errorf("seed %d, proxied worker %d shares on the direct pool: %v", seed, w, p.tx)
			}
			if p.tx.Share && p.tx.ShareProxied != sh.sharing.proxied {
				t.Errorf("seed %d, worker %d: drew %v; the round's sharing pool is proxied: %v", seed, w, p.tx, sh.sharing.proxied)
			}
			if ro := p.tx.readOnly(); ro.Share || ro.ShareProxied {
				t.Errorf("seed %d, worker %d: its ReadOnly transaction shares commits", seed, w)
			}
			if !sh.sharing.core[w] {
				continue
			}
			if p.tx.Limit != sh.sharing.limit || p.tx.Iso != "" {
				t.Errorf("seed %d, core worker %d: drew %v, want the round's %v", seed, w, p.tx, sh.sharing)
			}
			if slices.ContainsFunc(p.post, func(d genDeco) bool { return d.kind == decoHotSpot }) {
				t.Errorf("seed %d, core worker %d: drew a HotSpot: %v", seed, w, p)
			}
		}
		if core != 2 {
			t.Errorf("seed %d: %d core sharing workers, want 2: %v", seed, core, sh.sharing)
		}
	}
	for _, msg := range refused {
		t.Errorf("pgxdb refused a drawn transaction that shares commits: %s", msg)
	}
}
