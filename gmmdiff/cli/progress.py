"""Progress of long jobs: a bar on a terminal, otherwise a line at a steady interval.

Training (:class:`StepProgress`) reports the step, elapsed time, ETA and mean loss over
the models of the batch. A sweep (:class:`SweepProgress`) reports units and
configurations done out of the total, counted from the sweep directory -- so every
process that shares the directory (``--jobs``, ``--devices``, several machines) is
counted -- with the elapsed time and an ETA from the cost done so far, or, before
anything finished, from the estimate made before the sweep started
(:func:`estimate_sweep_seconds`).

Where stderr is not a terminal (nohup, Slurm, a log file) lines come every
:data:`DEFAULT_INTERVAL_S` seconds (environment variable ``GMMDIFF_PROGRESS_SECONDS``
overrides it; 0 prints at every logged step). Host side only: the callbacks get the
losses the training loop already brought to the host at its log points.
"""
import os
import sys
import threading
import time

DEFAULT_INTERVAL_S = 30.0


def interval_seconds():
    """Seconds between progress lines: ``$GMMDIFF_PROGRESS_SECONDS`` or 30."""
    raw = os.environ.get("GMMDIFF_PROGRESS_SECONDS")
    if raw is None or raw == "":
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"GMMDIFF_PROGRESS_SECONDS={raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise ValueError(f"GMMDIFF_PROGRESS_SECONDS={raw!r} must be >= 0")
    return value


def duration(seconds):
    """'1:02:03' / '2:03' / '71 hours' (from 48 hours on) / '?' for a number of seconds
    (None or not finite: '?')."""
    if seconds is None or not seconds == seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    s = int(round(max(0.0, seconds)))
    if s >= 48 * 3600:
        return f"{s / 3600:,.0f} hours"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class StepProgress:
    """Progress of one training run of ``steps`` optimizer steps.

    Call the instance as the training callback ``(step, losses (J,))``; :meth:`close`
    at the end. On a terminal (``tty``) it draws click's bar; otherwise it prints
    ``label: step s/S (p%), elapsed, ETA, mean loss`` every ``interval`` seconds and
    once at the last step. The rate is measured from this process's own steps, so a
    resumed run's ETA is not fooled by the steps it skipped.
    """

    def __init__(self, steps, label, *, stream=None, tty=None, interval=None, clock=time.monotonic):
        self.steps, self.label = int(steps), label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.interval = interval_seconds() if interval is None else float(interval)
        self.clock = clock
        self.start = clock()
        self.first = None               # (time, step) of the first report in this process
        self.last_line = None
        self.done = 0
        self.bar = None

    def __call__(self, step, losses):
        import numpy as np
        mean = float(np.mean(losses))
        if self.tty:
            import click
            if self.bar is None:
                self.bar = click.progressbar(length=self.steps, label=self.label, file=self.stream,
                                             show_eta=True, show_pos=True,
                                             item_show_func=lambda s: s)
                self.bar.__enter__()
            self.bar.update(step - self.done, f"loss {mean:.4g}")
            self.done = step
            return
        now = self.clock()
        if self.first is None:
            self.first = (now, step)
        self.done = step
        due = self.last_line is None or now - self.last_line >= self.interval
        if due or step >= self.steps:
            self.last_line = now
            self.stream.write(self.line(step, mean, now) + "\n")
            self.stream.flush()

    def eta(self, step, now):
        """Seconds left at ``step`` from this process's rate (None before it has one)."""
        t0, s0 = self.first
        if step >= self.steps:
            return 0.0
        if step <= s0 or now <= t0:
            return None             # one report so far: its time includes the start-up
        return (now - t0) / (step - s0) * (self.steps - step)

    def line(self, step, mean_loss, now):
        pct = 100.0 * step / self.steps if self.steps else 100.0
        return (f"{self.label}: step {step}/{self.steps} ({pct:.0f}%), elapsed "
                f"{duration(now - self.start)}, ETA {duration(self.eta(step, now))}, "
                f"mean loss {mean_loss:.4g}")

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class FitProgress:
    """Progress of ``gmmdiff-predict --fit``'s fits of one source: the instance is
    :func:`gmmdiff.analysis.fits.fit_summary`'s ``progress``, called as ``(done,
    total)`` before the first fit (done 0) and after each.

    It prints ``first`` (what is fitted) when fitting starts -- after the sweep's
    checks, so a refusal stays one line. On a terminal (``tty``; default: whether
    stderr is one) it then draws a bar (:class:`gmmdiff.cli.terminal.TerminalBar`:
    ``label``, fits done, elapsed, ETA), left at its last state after the last fit;
    elsewhere ``label: k/n fits, elapsed, ETA`` at most every ``interval`` seconds
    (default 5, or ``$GMMDIFF_PROGRESS_SECONDS`` where set), and none after the last
    fit: the fit's own table follows. A fit of the Monte Carlo source on a few
    configurations takes tens of seconds (SciPy's SLSQP on 26 weights, per fold),
    which without these lines passed in silence."""

    def __init__(self, label, *, first=None, echo=None, interval=None, tty=None, stream=None,
                 columns=None):
        from gmmdiff.cli.terminal import TerminalBar
        self.label, self.first = label, first
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.interval = (interval if interval is not None else
                         interval_seconds() if os.environ.get("GMMDIFF_PROGRESS_SECONDS") else 5.0)
        tty = _isatty(stream if stream is not None else sys.stderr) if tty is None else tty
        self.bar = TerminalBar(label, stream, columns=columns, min_interval=0.0) if tty else None
        self.start = self.last = time.monotonic()

    def __call__(self, done, total):
        now = time.monotonic()
        if done == 0:
            if self.first:
                self.echo(self.first)
                self.first = None
            self.start = self.last = now
            if self.bar is not None:
                self.bar.draw(0.0, duration(0), "?", f"0/{total} fits", force=True)
            return
        elapsed = now - self.start
        eta = duration(elapsed / done * (total - done))
        if self.bar is not None:
            self.bar.draw(done / total, duration(elapsed), eta, f"{done}/{total} fits",
                          force=done >= total)
            if done >= total:
                self.bar.close()
            return
        if done >= total or now - self.last < self.interval:
            return
        self.last = now
        self.echo(f"{self.label}: {done}/{total} fits, elapsed {duration(elapsed)}, ETA {eta}")


def _shown(text):
    """Unit names as the bar shows them: without the '-shard0of1' of a one-process
    sweep (the bar is one terminal line)."""
    return text.replace("-shard0of1", "")


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------- sweeps

# Refinement sizes lie between the coarse start and end, around M ~ 0.8 N: the cost
# model counts each at this fraction of N.
REFINE_SIZE_FRACTION = 0.8


def unit_cost(cfgs, coarse_sizes, refine):
    """(coarse, refine) cost of one unit of a sweep in model-row-component units: per
    configuration noise_draws * N * (d + 1) * sum of the sizes trained, times steps.
    ``coarse_sizes``: the coarse sizes of one configuration; ``refine``: refinement
    points (their sizes are taken at :data:`REFINE_SIZE_FRACTION` N)."""
    c = cfgs[0]
    per = c.noise_draws * c.samples * (c.dim + 1) * c.steps * len(cfgs)
    return (per * float(sum(coarse_sizes)), per * refine * REFINE_SIZE_FRACTION * c.samples)


def estimate_sweep_seconds(units, coarse_points, refine, xp, *, whole_unit=True, budget_s=1.0,
                           clock=time.monotonic):
    """Estimated training time of the sweep units ``[(name, [configurations])]`` from a
    short timing: the optimizer steps of the costliest unit's coarse sizes (all its
    configurations in one batch, as the sweep trains them; ``whole_unit=False``: of its
    costliest configuration alone), run for about ``budget_s`` seconds (at least one
    step after the first, which is not counted), scaled to every unit by
    :func:`unit_cost`. Evaluation after training is not counted. Returns
    ``(seconds, what was timed)``."""
    import dataclasses

    from gmmdiff.experiments.sweep.plans import coarse_sizes
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state

    def cost(cfgs):
        return sum(unit_cost(cfgs, coarse_sizes(cfgs[0].samples, coarse_points), refine))

    name, cfgs = max(units, key=lambda u: cost(u[1]))
    if not whole_unit:
        cfgs = [max(cfgs, key=lambda c: (c.components, c.seed))]
    sizes = coarse_sizes(cfgs[0].samples, coarse_points)
    timing = [dataclasses.replace(c, steps=10**6) for c in cfgs]    # the schedule is irrelevant
    datasets = [c.dataset(xp) for c in timing]
    owners = [o for o in range(len(cfgs)) for _ in sizes]
    state = initial_state(datasets, sizes * len(cfgs), timing, xp, owners=owners)
    stamps = []

    class Enough(Exception):
        pass

    def callback(step, losses):
        stamps.append(clock())
        if len(stamps) >= 2 and stamps[-1] - stamps[0] >= budget_s:
            raise Enough

    try:
        train(datasets, state, timing, xp, callback=callback, log_every=1)
    except Enough:
        pass
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    ref = unit_cost(cfgs, sizes, 0)[0] / cfgs[0].steps
    total = sum(cost(cs) for _, cs in units)
    c = cfgs[0]
    what = (f"{len(stamps) - 1} steps of N{c.samples}-d{c.dim}'s {len(sizes) * len(cfgs)} "
            f"coarse models: {per_step * 1e3:.3g} ms/step")
    return per_step * total / ref, what


class SweepProgress:
    """Progress of the units ``[(name, [configurations])]`` of a sweep command.

    :meth:`report` (from a training callback, or a thread of the parent of
    ``--jobs`` workers, :meth:`watching`) prints, at most every ``interval`` seconds,
    ``sweep: units u/U, configurations c/C done, elapsed, ETA``; ``done`` is counted
    from the sweep directory (a configuration's transition.json), so units finished
    by any process sharing the directory count. The ETA comes from the cost done in
    this command's lifetime (:func:`unit_cost`), or from ``estimate_s`` before any.
    The parent of workers also reads from the directory which units are in training
    and their last checkpoints (:func:`gmmdiff.experiments.sweep.units.unit_in_training`),
    which count towards the cost done and are named.

    ``tty``: draw all of it as one bar redrawn in place on ``stream``
    (:class:`gmmdiff.cli.terminal.TerminalBar`, default stderr) instead of lines;
    :meth:`around` keeps other printed lines above the bar, :meth:`close` ends it.
    """

    def __init__(self, units, sweep_dir, coarse_points, refine, *, estimate_s=None, echo=None,
                 interval=None, clock=time.monotonic, tty=False, stream=None, columns=None):
        from gmmdiff.cli.terminal import TerminalBar
        from gmmdiff.experiments.sweep.plans import coarse_sizes
        self.units = [(name, cfgs, unit_cost(cfgs, coarse_sizes(cfgs[0].samples, coarse_points),
                                             refine)) for name, cfgs in units]
        self.total_cost = sum(sum(c) for _, _, c in self.units) or 1.0
        self.n_configs = sum(len(cfgs) for _, cfgs, _ in self.units)
        self.sweep_dir = sweep_dir
        self.estimate_s = estimate_s
        self.echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
        self.interval = interval_seconds() if interval is None else float(interval)
        self.clock = clock
        self.start = clock()
        self.last_line = None
        self.current = None             # (unit index, phase, last step) in this process
        self.seen = {}                  # unit -> cost done in training, seen by the parent
        self.bar = TerminalBar("sweep", stream, columns=columns, clock=clock) if tty else None
        self.start_fraction = self.fraction_done()[0]

    def fraction_done(self, inflight=0.0):
        """(fraction of the cost done, units done, configurations done)."""
        from gmmdiff.experiments.sweep.units import is_complete
        cost = units = configs = 0
        for _, cfgs, (c, r) in self.units:
            n = sum(is_complete(self.sweep_dir, cfg) for cfg in cfgs)
            configs += n
            if n == len(cfgs):
                units += 1
                cost += c + r
        return min(1.0, (cost + inflight) / self.total_cost), units, configs

    def status(self, inflight=0.0):
        """(fraction done, units done, configurations done, elapsed text, ETA text)."""
        now = self.clock()
        frac, units, configs = self.fraction_done(inflight)
        elapsed = now - self.start
        gained = frac - self.start_fraction
        if frac >= 1.0:
            eta = "0:00"
        elif gained >= 0.01 or (gained > 0 and self.estimate_s is None):
            eta = duration(elapsed / gained * (1.0 - frac))
        elif self.estimate_s is not None and self.estimate_s * (1.0 - frac) > elapsed:
            eta = duration(self.estimate_s * (1.0 - frac) - elapsed) + " (estimate)"
        else:
            eta = "?"
        return frac, units, configs, duration(elapsed), eta

    def line(self, inflight=0.0):
        frac, units, configs, elapsed, eta = self.status(inflight)
        return (f"sweep: units {units}/{len(self.units)}, configurations {configs}/"
                f"{self.n_configs} done ({100 * frac:.0f}% of the work), elapsed "
                f"{elapsed}, ETA {eta}")

    def _draw(self, inflight, what, force):
        """The bar's state now: counts, elapsed, ETA and ``what`` is running."""
        frac, units, configs, elapsed, eta = self.status(inflight)
        self.bar.draw(frac, elapsed, eta, f"units {units}/{len(self.units)}, configurations "
                                          f"{configs}/{self.n_configs}" + (f"; {what}" if what else ""),
                      force=force)

    def _bar_due(self):
        return self.bar.last is None or self.clock() - self.bar.last[0] >= self.bar.min_interval

    def in_training(self):
        """(cost done in the units other processes are training, 'training N20-d10
        coarse step 3000/50000, ...') from the directory: the parent's view of its
        workers. A unit's cost never goes back within this command (between its two
        phases no checkpoint exists)."""
        from gmmdiff.experiments.sweep.units import is_complete, unit_in_training
        inflight, parts = 0.0, []
        for name, cfgs, (c, r) in self.units:
            if all(is_complete(self.sweep_dir, cfg) for cfg in cfgs):
                self.seen.pop(name, None)
                continue
            where = unit_in_training(self.sweep_dir, name)
            if where is None:
                continue
            phase, step = where
            steps = cfgs[0].steps
            done = c * (step or 0) / steps if phase == "coarse" else c + r * (step or 0) / steps
            self.seen[name] = max(self.seen.get(name, 0.0), done)
            inflight += self.seen[name]
            parts.append(f"{_shown(name)} {'refinement' if phase == 'refine' else 'coarse'} "
                         + (f"step {step}/{steps}" if step is not None else "started"))
        return inflight, ("training " + ", ".join(parts) if parts else "")

    def report(self, force=False, inflight=0.0, from_directory=False):
        """Print the line (at most every ``interval`` seconds unless ``force``), or
        redraw the bar; ``from_directory``: the units in training as the parent of
        workers sees them (:meth:`in_training`), named after the line."""
        now = self.clock()
        if self.bar is not None:
            if force or self._bar_due():
                what = ""
                if from_directory:
                    inflight, what = self.in_training()
                self._draw(inflight, what, force)
            return
        if force or self.last_line is None or now - self.last_line >= self.interval:
            self.last_line = now
            what = ""
            if from_directory:
                inflight, what = self.in_training()
            self.echo(self.line(inflight) + (f"; {what}" if what else ""))

    def training_callback(self, unit_name, label_echo=None):
        """A training callback for the unit ``unit_name`` trained by this process: its
        steps count towards the done fraction (coarse phase, then refinement: a step
        count that falls back to the start marks the refinement's)."""
        k = [n for n, _, _ in self.units].index(unit_name)
        c, r = self.units[k][2]
        state = {"phase": 0, "step": 0}

        def callback(step, losses):
            if step < state["step"]:
                state["phase"] = 1
            state["step"] = step
            steps = self.units[k][1][0].steps
            inflight = (c * step / steps if state["phase"] == 0 else c + r * step / steps)
            now = self.clock()
            due = (self._bar_due() if self.bar is not None else
                   self.last_line is None or now - self.last_line >= self.interval)
            if due:
                import numpy as np
                what = (f"{unit_name} {'coarse' if state['phase'] == 0 else 'refinement'} step "
                        f"{step}/{steps}")
                if self.bar is not None:
                    self._draw(inflight, _shown(what), False)
                    return
                what += f", mean loss {float(np.mean(losses)):.4g}"
                self.last_line = now
                self.echo(f"{self.line(inflight)}; {what}")
        return callback

    def around(self, echo):
        """``echo`` keeping its lines above the bar (itself without one)."""
        return echo if self.bar is None else self.bar.around(echo)

    def close(self):
        """End the bar's line (nothing without a bar)."""
        if self.bar is not None:
            self.bar.close()

    def watch(self, stop):
        """Report until the threading.Event ``stop`` is set (the parent of workers),
        with the units in training read from the directory."""
        wait = (min(1.0, self.interval) if self.interval > 0 else 1.0) if self.bar is None else 0.5
        while not stop.wait(wait):
            self.report(from_directory=True)

    def watching(self):
        """Context manager: :meth:`watch` in a daemon thread for the block's duration."""
        progress = self

        class _Watch:
            def __enter__(self):
                self.stop = threading.Event()
                self.thread = threading.Thread(target=progress.watch, args=(self.stop,),
                                               daemon=True)
                self.thread.start()
                return progress

            def __exit__(self, *exc):
                self.stop.set()
                self.thread.join()
                return False
        return _Watch()
