"""The delivery worker: drains the spool into channels, in order, with retries and flap summaries.

- Each channel has its own thread, so a dead mail server never delays syslog.
- Within a channel, one instance's deliveries go one at a time, in event order:
  a delivery waits while an older one for the same instance is retrying.
- Temporary failures retry with exponential backoff and full jitter (or the
  server's Retry-After); permanent failures, too many attempts or too great an
  age move the delivery to dead/ and say so in the log.
- Flapping: the first transition goes out at once; transitions that follow
  within `flap_window` of each other are held until the instance has been
  quiet for a window, then go out as one summary message.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from kahooks.errors import KahooksError, os_words
from kahooks.events.transition import Transition
from kahooks.notify.spooldir import SpoolError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kahooks.events.event import Event
    from kahooks.notify.spool import Delivery, Spool
    from kahooks.settings.config import Config

log = logging.getLogger("kahooks.notify.delivery")


class TemporaryFailure(KahooksError):
    """The endpoint may accept this later (timeout, 4xx SMTP, 5xx HTTP, 429, connection refused).

    `alert=True`: people must hear of it (a service did not rebind to its VIP), so the
    worker records an ALERT event for the rules to route, on the first failure and on giving up.
    """

    def __init__(self, reason: str, retry_after: float | None = None, alert: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.alert = alert


class PermanentFailure(KahooksError):
    """Retrying cannot help (authentication refused, channel deleted, bad request)."""


class Message:
    """What a channel sends for one delivery (or one flapping burst)."""

    def __init__(self, subject: str, body: str, transition: Transition, events: list[Event],
                 superseded: bool = False) -> None:
        self.subject = subject
        self.body = body
        self.transition = transition
        self.context = transition.context()  # the template variables, for channels that read a few
        self.events = events
        # A newer event for this instance is already queued for this channel: a channel that
        # changes state (DNS, rebind) should act on reality (kahooks.system.reality), not on this event.
        self.superseded = superseded

    @property
    def event(self) -> Event:
        """The newest event: the state the instance is in now, as far as keepalived told us."""
        return self.events[-1]

    @property
    def id(self) -> str:
        return self.events[-1].id


def transition_of(config: Config, batch: list[Delivery]) -> Transition:
    """The one Transition a batch of deliveries (one event, or a flapping burst) makes."""
    events = [delivery.event for delivery in batch]
    return Transition.of(config.host, config.vips(events[-1].name), events, batch[0].previous_state)


def compose(config: Config, channel: Any, batch: list[Delivery]) -> Message:
    """The message `channel` sends for a batch: the one composition of the worker and of ka-notify's
    dry run, so what a dry run shows is what delivery sends."""
    transition = transition_of(config, batch)
    subject, body = channel.templates.render(transition.context())
    return Message(subject, body, transition, [delivery.event for delivery in batch])


def acts_on(channel: Any, event: Event) -> bool:
    """False: the channel lets this event pass unsent (a DNS or rebind channel acts on VRRP transitions only)."""
    return not (channel.vrrp_only and (event.is_alert or event.is_lvs))


class Worker:
    """Delivers what the spool holds. `on_event(event)` hears of each event as it is fanned out and
    `on_outcome(channel, outcome)` of each attempt ('delivered', 'retry', 'dead'): the daemon counts them."""

    def __init__(self, config: Config, spool: Spool, clock: Callable[[], float] = time.time,
                 on_event: Callable[[Event], None] | None = None,
                 on_outcome: Callable[[str, str], None] | None = None,
                 wake: threading.Event | None = None) -> None:
        self._config_changed: Callable[[], bool] | None = None
        self.config = config
        self.spool = spool
        self.clock = clock
        self.on_event = on_event or (lambda event: None)
        self.on_outcome = on_outcome or (lambda channel, outcome: None)
        self.settings = config.delivery
        self.last_sent: dict[tuple[str, str], float] = {}
        self.wake = wake or threading.Event()  # set by whoever records (the daemon's FIFO reader, an alert)
        self._channel_wakers = {name: threading.Event() for name in config.channels}
        from kahooks.notify.spool import ChannelState

        for name, channel in config.channels.items():
            channel.remember_in(ChannelState(spool, name))

    def keeping_alive(self) -> bool:
        """A channel keeps something alive at its endpoint (a firing alert): not a time to idle out."""
        return any(channel.keeping_alive() for channel in self.config.channels.values())

    # Fan-out ---------------------------------------------------------------------

    def fan_out_pending(self) -> int:
        """Queue every recorded event for the channels its rules pick; return how many were queued.

        A channel's thread is woken as soon as its delivery is in queue/ (Spool.queue), before the
        fsyncs of Spool.settle: the recording stays until they are done, so a crash meanwhile queues
        the event again (at least once), and the sending need not wait for them."""
        count = 0
        for path in self.spool.incoming():
            queued = self.spool.queue(path, self.config.channels_for)
            if queued is None:
                continue
            event, channels = queued
            # Heard before any channel can act on it: what a delivered transition's receiver asks the daemon
            # next (/metrics, status) already knows it, not only once the fsyncs below are done.
            self.on_event(event)
            for channel in channels:
                waker = self._channel_wakers.get(channel)
                if waker is not None:
                    waker.set()
            self.spool.settle(path, event, channels)
            count += 1
            log.debug("queued %s %s for %s", event.name, event.state, ", ".join(channels) or "no channel")
        return count

    # One pass over a channel's queue ----------------------------------------------------

    def channel_pass(self, name: str) -> float | None:
        """Attempt every due delivery of one channel; return when the next one falls due (None: nothing)."""
        channel = self.config.channels[name]
        groups: dict[str, list[Delivery]] = {}
        for delivery in self.spool.queued(name):
            # Alerts about an instance are ordered among themselves (by topic: an alert and its clearing), never
            # batched with its transitions, nor with its alerts of another topic (one would hide the other).
            event = delivery.event
            key = f"{event.key} (alert{' ' + event.topic if event.topic else ''})" if event.is_alert else event.key
            groups.setdefault(key, []).append(delivery)
        next_due: float | None = None
        for instance, pending in groups.items():
            now = self.clock()
            batch, wait_until = self.select(name, instance, pending, now)
            if batch is None:
                next_due = wait_until if next_due is None else min(next_due, wait_until)
                continue
            self.clamp(name, batch, now)
            if batch[0].next_attempt > now:
                next_due = batch[0].next_attempt if next_due is None else min(next_due, batch[0].next_attempt)
                continue
            self.attempt(channel, name, instance, batch, superseded=len(batch) < len(pending))
            next_due = self.clock()  # look again at once: what is left, or when a retry falls due
        return next_due

    def latest_due(self, delivery: Delivery, now: float) -> float:
        """The latest next attempt this worker could have scheduled: the backoff cap, or a server's
        Retry-After within what is left of max_age (of a delivery made no later than now)."""
        return max(now + self.settings["backoff_max"], min(delivery.created, now) + self.settings["max_age"])

    def clamp(self, name: str, batch: list[Delivery], now: float) -> None:
        """A next attempt later than latest_due was not set by a worker (the spool's owner, a clock
        that jumped back): bring it to latest_due, saved, so no entry holds its instance's queue."""
        latest = self.latest_due(batch[0], now)
        for delivery in batch:
            if delivery.next_attempt > latest:
                log.warning("%s: %s was not due for %.0f s; trying it in %.0f s at most", name, delivery.name,
                            delivery.next_attempt - now, latest - now)
                delivery.next_attempt = latest
                self.spool.save(delivery)

    def select(self, name: str, instance: str, pending: list[Delivery], now: float) -> tuple[list | None, float]:
        """The deliveries to send together now, or (None, when to look again) while a burst settles."""
        window = self.settings["flap_window"]
        if window <= 0:
            return [pending[0]], 0.0
        run = [pending[0]]
        for delivery in pending[1:]:
            if delivery.event.time - run[-1].event.time >= window:
                break
            run.append(delivery)
        quiet_after = len(run) < len(pending)  # a gap of a whole window follows this run
        recently_sent = now - self.last_sent.get((name, instance), float("-inf")) < window
        if len(run) == 1 and (not recently_sent or run[0].attempts > 0):
            return run, 0.0  # an isolated transition goes out at once
        release = run[-1].event.time + window
        # An event stamped later than now (a clock stepped back, a planted entry) is not waited for:
        # its window would end whenever its stamp says, a month ahead as easily as a second.
        if not quiet_after and run[-1].event.time <= now < release:
            return None, release
        return run, 0.0

    def attempt(self, channel: Any, name: str, instance: str, batch: list[Delivery],
                superseded: bool = False) -> None:
        message = compose(self.config, channel, batch)
        message.superseded = superseded
        what = f"{instance} {message.event.state}" + (f" ({len(batch)} transitions)" if len(batch) > 1 else "")
        if not acts_on(channel, message.event):
            for delivery in batch:
                self.spool.complete(delivery)
            return
        try:
            channel.send(message)
        except PermanentFailure as exc:
            places = [self.spool.bury(delivery, f"permanent: {exc}") for delivery in batch]
            log.error("%s: gave up on %s (event %s): %s; kept in %s", name, what, message.id, exc, places[-1].parent)
            self.on_outcome(name, "dead")
            return
        except TemporaryFailure as exc:
            gave_up = self.retry(name, what, batch, str(exc), exc.retry_after)
            if exc.alert and (gave_up or batch[0].attempts == 1):
                self.raise_alert(name, message, str(exc) + (" (gave up)" if gave_up else " (retrying)"))
            return
        except Exception as exc:  # a channel bug must not lose the message: retry it like a timeout
            log.exception("%s: unexpected error delivering %s", name, what)
            self.retry(name, what, batch, f"{type(exc).__name__}: {exc}", None)
            return
        for delivery in batch:
            self.spool.complete(delivery)
        self.on_outcome(name, "delivered")
        self.last_sent[(name, instance)] = self.clock()
        log.info("%s: delivered %s (event %s)", name, what, message.id)

    def raise_alert(self, channel_name: str, message: Message, reason: str) -> None:
        """Record an ALERT event about the instance: the rules send it to people like a transition.
        The reason is a channel's error, which can quote its URL or a command's output: redacted, as the
        other channels (a chat room, a pager) must not learn this one's credentials."""
        from kahooks.events.event import Event
        from kahooks.output import redact

        if message.event.is_alert:
            return  # never an alert about an alert
        self.spool.record(Event.alert(message.event.name, f"{channel_name}: {redact.text(reason)}",
                                      source=channel_name))
        self.wake.set()

    def retry(self, name: str, what: str, batch: list[Delivery], reason: str, retry_after: float | None) -> bool:
        """Schedule another attempt; True when the batch was given up on (moved to dead/) instead."""
        now = self.clock()
        attempts = batch[0].attempts + 1
        too_old = now - batch[0].created > self.settings["max_age"]
        if attempts >= self.settings["max_attempts"] or too_old:
            why = "too old" if too_old else f"{attempts} attempts"
            for delivery in batch:
                delivery.attempts = attempts
            places = [self.spool.bury(delivery, f"gave up after {why}: {reason}") for delivery in batch]
            log.error("%s: gave up on %s after %s, last error: %s; kept in %s", name, what, why, reason,
                      places[-1].parent)
            self.on_outcome(name, "dead")
            return True
        delay = self.backoff(attempts, retry_after, age_left=batch[0].created + self.settings["max_age"] - now)
        for delivery in batch:
            delivery.attempts = attempts
            delivery.next_attempt = now + delay
            delivery.last_error = reason
            self.spool.save(delivery)
        log.warning("%s: %s not delivered (%s); attempt %d, next in %.1f s", name, what, reason, attempts, delay)
        self.on_outcome(name, "retry")
        return False

    def backoff(self, attempts: int, retry_after: float | None, age_left: float = float("inf")) -> float:
        """Full jitter: uniform in [0, min(cap, initial * 2^(n-1))]. A server's Retry-After wins, whole:
        asking sooner only earns another 429; it is bounded by what is left of max_age alone."""
        cap = self.settings["backoff_max"]
        if retry_after is not None:
            return min(max(retry_after, 0.0), max(0.0, age_left))
        return random.uniform(0, min(cap, self.settings["backoff_initial"] * 2 ** (attempts - 1)))

    # Running ----------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Synchronously fan out and deliver until the spool is empty or `timeout` passes (for tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.fan_out_pending()
            for name in self.config.channels:
                self.channel_pass(name)
            if self.spool.idle():
                return True
            time.sleep(0.01)
        return self.spool.idle()

    def run(self, stop: threading.Event, idle_exit: float | None = None,
            config_changed: Callable[[], bool] | None = None) -> None:
        """Deliver until `stop` is set, until idle for `idle_exit` seconds, or until `config_changed()`
        (the caller then loads the new configuration: a channel fixed by the operator is used at once)."""
        self._config_changed = config_changed
        # The channel threads stop with this run; `stop` is the caller's (a signal), left as it is.
        halt = threading.Event()
        threads = [threading.Thread(target=self._channel_loop, args=(name, halt), name=f"channel-{name}",
                                    daemon=True) for name in self.config.channels]
        for thread in threads:
            thread.start()
        watcher = _watch(self.spool.incoming_dir, self.wake)
        last_busy = time.monotonic()
        try:
            failing = 0.0
            while not stop.is_set() and not halt.is_set():
                self.wake.clear()
                try:
                    if self.fan_out_pending():
                        for waker in self._channel_wakers.values():
                            waker.set()
                    idle = self.spool.idle()
                    if failing:
                        log.info("the spool %s can be read again", self.spool.root)
                    failing = 0.0
                except Exception as exc:  # a spool briefly unreadable (EMFILE, read-only): wait, try again
                    failing = min(30.0, failing * 2 or 0.5)
                    log.error("cannot fan out from %s: %s: %s; trying again in %.1f s", self.spool.root,
                              type(exc).__name__, exc, failing)
                    stop.wait(failing)
                    continue
                if not idle:
                    last_busy = time.monotonic()
                elif idle_exit is not None and time.monotonic() - last_busy >= idle_exit and not self.keeping_alive():
                    return
                if config_changed is not None and config_changed():
                    return
                self.wake.wait(0.5 if watcher is None else 2.0)
        finally:
            halt.set()
            if watcher is not None:
                watcher.stop()
            for waker in self._channel_wakers.values():
                waker.set()
            for thread in threads:
                thread.join(timeout=10)

    def _channel_loop(self, name: str, stop: threading.Event) -> None:
        waker = self._channel_wakers[name]
        while not stop.is_set():
            waker.clear()
            if self._config_changed is not None and self._config_changed():
                stop.set()  # this run's halt: never one more attempt with a channel the operator has just changed
                self.wake.set()
                break
            try:
                next_due = self.channel_pass(name)
            except (SpoolError, OSError) as exc:  # the spool's owner broke a folder: one line a pass, no traceback
                log.error("%s: cannot read its queue: %s; trying again in 1 s", name, os_words(exc))
                next_due = self.clock() + 1.0
            except Exception:
                log.exception("%s: delivery pass failed", name)
                next_due = self.clock() + 1.0
            # A channel that keeps something alive at its endpoint (the alertmanager channel's firing
            # alerts) does it here, in its own thread, between its deliveries: never racing them.
            try:
                self.config.channels[name].refresh()
            except Exception:
                log.exception("%s: refresh failed", name)
            wait = 1.0 if next_due is None else min(1.0, max(0.0, next_due - self.clock()))
            if wait > 0:
                waker.wait(wait)


def _watch(directory: Any, wake: threading.Event) -> Any:
    """inotify on incoming/, so a newly recorded event is picked up at once; None: poll."""
    from kahooks.files.watching import observe

    try:
        return observe([str(directory)], lambda path: wake.set())
    except ImportError:  # watchdog missing: poll
        return None
