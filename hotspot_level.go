package dbop

import "time"

const (
	// crowdCheck is how often, in attempts, a HotSpot looks at the
	// conflicts among its last attempts: it halves the level when they
	// are too many (tooMany), and while it starts, doubles it when they
	// were not.
	crowdCheck = 16
	// window is the number of attempts over which a HotSpot measures the
	// rate of successes at a level.
	window = 96
	// gain is how much more work a level with one more slot must get done
	// in a trial to be kept, and how much less one with one fewer may.
	gain = 0.10
	// minHold and maxHold bound the number of windows a HotSpot holds a
	// level before it tries a neighbour; each trial that fails doubles the
	// hold, so a level that is right costs ever fewer trials.
	minHold, maxHold = 2, 32
	// crowdShare: conflicts are too many at a level above one when they
	// are more than one attempt in crowdShare (see tooMany). A conflict
	// costs more than the attempt it fails: the work redone, and in a lock
	// cycle a wait for a deadline, so a level that fails one attempt in
	// eight is not worth its parallelism even when it looks as fast in a
	// short, noisy measurement.
	crowdShare = 8
	// calmAfter is the number of successive successes with nobody waiting
	// after which a HotSpot stops limiting.
	calmAfter = 128
	// maxLevel bounds the level's doubling.
	maxLevel = 1 << 16
)

// The phases of the search for the level.
const (
	starting = iota // doubling from one slot while attempts do not conflict
	holding         // at base, for holdLeft more windows
	trying          // one window at base+trialDir
	checking        // one window back at base, to compare the trial with
)

// levelSearch finds how many attempts a HotSpot admits at once: the level
// that gets the most done. Its methods are called with the HotSpot's mutex
// held.
//
// It starts at one slot and doubles every crowdCheck attempts as long as
// no more than one in crowdShare of them conflicted and attempts wait for
// a slot (TCP's slow start; a deadline that fires now and then on a busy
// machine does not end it). From then on it holds a level for holdLen
// windows; then
// one window tries a neighbour, and one more window at the held level
// follows, so that the trial is compared with the windows just before and
// just after it, and a change in the load around it cancels out. One more
// slot is kept if it got at least gain more done; one fewer unless it got
// gain less done (fewer attempts at once mean fewer conflicts and shorter
// waits, so ties go to the lower level). A trial that fails doubles
// holdLen, up to maxHold; a kept trial resets it. Whenever conflicts
// outnumber successes over crowdCheck attempts at a held level, the level
// is halved at once.
type levelSearch struct {
	slots        int // the level in force: attempts admitted at once
	base         int // the level held; slots differs from it during a trial
	phase        int
	holdLen      int // windows to hold between trials
	holdLeft     int // windows left before the next trial
	trialDir     int // the direction of the trial, +1 or -1
	nextDir      int // the direction of the next trial from a base above 1
	lastHold     float64
	trialRate    float64
	trialCrowded bool
	// crowdedSeen: conflicts were too many in a block of crowdCheck
	// attempts; the HotSpot reads and clears it after each measure.
	crowdedSeen bool

	winStart            time.Time
	winN, winOK         int
	winConflicts        int
	subOK, subConflicts int
}

func (l *levelSearch) start() {
	*l = levelSearch{slots: 1, base: 1, phase: starting, holdLen: minHold, holdLeft: minHold, nextDir: -1}
	l.newWindow(time.Now())
}

func (l *levelSearch) newWindow(now time.Time) {
	l.winStart, l.winN, l.winOK, l.winConflicts = now, 0, 0, 0
	l.subOK, l.subConflicts = 0, 0
}

// hold makes the level slots the one held.
func (l *levelSearch) hold(slots int) {
	l.slots, l.base, l.phase = slots, slots, holding
	l.holdLen, l.holdLeft = minHold, minHold
	l.newWindow(time.Now())
}

// measure counts an attempt's end, a success or a conflict; waiting says
// whether attempts wait for a slot, and ceiling, when above 0, is the most
// slots worth having.
func (l *levelSearch) measure(ok, waiting bool, ceiling int, p params) {
	l.winN++
	if ok {
		l.winOK++
		l.subOK++
	} else {
		l.winConflicts++
		l.subConflicts++
	}
	if (l.subOK+l.subConflicts)%crowdCheck == 0 {
		crowded := tooMany(l.subConflicts, l.subOK)
		l.subOK, l.subConflicts = 0, 0
		l.crowdedSeen = l.crowdedSeen || crowded
		switch {
		case crowded && l.slots > 1 && (l.phase == starting || l.phase == holding):
			l.hold(max(1, l.slots/2))
			return
		case l.phase == starting && crowded:
			l.hold(l.slots)
			return
		case l.phase == starting && waiting && ceiling > 0 && l.slots >= ceiling:
			l.hold(ceiling)
			return
		case l.phase == starting && waiting && l.slots < maxLevel:
			l.slots *= 2
			if ceiling > 0 {
				l.slots = min(l.slots, ceiling)
			}
			l.base = l.slots
			l.newWindow(time.Now())
			return
		}
	}
	if ceiling > 0 && l.base > ceiling {
		l.hold(ceiling)
		return
	}
	if l.phase == starting || l.winN < p.window {
		return
	}
	now := time.Now()
	rate := float64(l.winOK) / max(now.Sub(l.winStart).Seconds(), 1e-9)
	crowded := tooMany(l.winConflicts, l.winOK)
	l.newWindow(now)

	switch l.phase {
	case holding:
		l.lastHold = rate
		if l.holdLeft--; l.holdLeft > 0 {
			return
		}
		l.trialDir = 1
		if l.base > 1 {
			l.trialDir, l.nextDir = l.nextDir, -l.nextDir
		}
		if ceiling > 0 && l.base+l.trialDir > ceiling {
			l.trialDir = -1
		}
		l.phase, l.slots = trying, l.base+l.trialDir
	case trying:
		l.trialRate, l.trialCrowded = rate, crowded
		l.phase, l.slots = checking, l.base
	case checking:
		around := (l.lastHold + rate) / 2
		better := l.trialRate > around*(1+p.gain)
		if l.trialDir < 0 {
			better = l.trialRate >= around*(1-p.gain)
		}
		if better && !l.trialCrowded {
			l.base += l.trialDir
			l.holdLen = minHold
		} else {
			l.holdLen = min(2*l.holdLen, p.maxHold)
		}
		l.slots, l.phase, l.holdLeft, l.lastHold = l.base, holding, l.holdLen, rate
	}
}

// params are the constants of the search, fixed when a HotSpot is built.
type params struct {
	window, maxHold int
	gain            float64
}

// tooMany reports whether conflicts are too many beside ok successes for
// the level they happened at: more than one in crowdShare of the attempts.
func tooMany(conflicts, ok int) bool {
	return conflicts*crowdShare > conflicts+ok
}
