"""Token buckets, counted in events: a key may send `rate` events per second on average and
`burst` at once. Times are passed in (seconds, any monotonic clock)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: int   # bucket size
    tokens: float
    updated_s: float

    @classmethod
    def full(cls, rate: float, burst: int, now_s: float) -> "TokenBucket":
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate} and {burst}")
        return cls(rate, burst, float(burst), now_s)

    def take(self, count: int, now_s: float) -> float:
        """Take `count` tokens and return 0.0, or take none and return the seconds until they exist.

        A request larger than the bucket costs the whole bucket, so it can pass once the bucket is full.
        """
        self._refill(now_s)
        cost = min(max(count, 1), self.burst)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def _refill(self, now_s: float) -> None:
        elapsed = now_s - self.updated_s
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.updated_s = now_s


class RateLimiter:
    """One bucket per key label, created full on first use."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, label: str, rate: float, burst: int, count: int, now_s: float) -> float:
        bucket = self._buckets.get(label)
        if bucket is None:
            bucket = self._buckets[label] = TokenBucket.full(rate, burst, now_s)
        return bucket.take(count, now_s)
