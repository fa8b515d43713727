//! Per-address throttling of failed logins, as GCRA (a sliding allowance rather than calendar
//! minutes, so no burst of twice the limit around a minute boundary): `limit` failures a minute,
//! all of them at once at most. An attempt is booked when it is admitted — before its password is
//! checked, so parallel guesses cannot all pass the check first — and given back when it
//! proves right. Counted in Redis when configured (every API process sees the same allowance) and
//! in-process otherwise or while Redis is down. IPv6 clients are counted per /64, the block one
//! subscriber holds.

use std::{net::IpAddr, time::Duration};

use crate::dispatch::ratelimit::{Rate, RateLimiter, Slot};

#[derive(Clone, Debug)]
pub struct FailureThrottle {
    rate: Rate,
    limiter: RateLimiter,
}

/// An admitted attempt's booking, to give back if the attempt succeeds.
#[derive(Debug)]
#[must_use]
pub struct Booking {
    key: String,
}

impl FailureThrottle {
    pub fn new(limit: u32, redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Self {
        Self {
            rate: Rate::per_minute(limit).with_burst(limit),
            limiter: RateLimiter::new(redis, prefix),
        }
    }

    /// Admits one attempt from `ip`, or says in how many seconds the next one may come.
    pub async fn admit(&self, ip: &str) -> Result<Booking, u64> {
        let key = throttle_key(ip);
        match self
            .limiter
            .acquire(&[(key.clone(), self.rate)], Duration::ZERO)
            .await
        {
            Slot::Booked(_) => Ok(Booking { key }),
            Slot::Later(wait) => Err(wait.as_secs_f64().ceil().max(1.0) as u64),
        }
    }

    /// The attempt was right: it does not count against its address.
    pub async fn give_back(&self, booking: Booking) {
        self.limiter.release(&booking.key, self.rate).await;
    }
}

/// The address a client is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
pub fn throttle_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_the_limit_and_lets_one_more_through_each_interval() {
        let throttle = FailureThrottle::new(3, None, "t:");
        for _ in 0..3 {
            assert!(throttle.admit("1.2.3.4").await.is_ok());
        }
        let retry = throttle.admit("1.2.3.4").await.expect_err("over the limit");
        assert!((1..=20).contains(&retry), "one more in 20 s, not {retry}");
        assert!(throttle.admit("5.6.7.8").await.is_ok(), "another address");
    }

    #[tokio::test]
    async fn a_right_attempt_gives_its_booking_back() {
        let throttle = FailureThrottle::new(2, None, "t:");
        for _ in 0..5 {
            let booking = throttle.admit("1.2.3.4").await.expect("admitted");
            throttle.give_back(booking).await;
        }
        assert!(throttle.admit("1.2.3.4").await.is_ok());
        assert!(throttle.admit("1.2.3.4").await.is_ok());
        assert!(throttle.admit("1.2.3.4").await.is_err());
    }

    #[test]
    fn ipv6_is_counted_per_slash_64() {
        assert_eq!(throttle_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            throttle_key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::/64"
        );
        assert_ne!(throttle_key("2001:db8:1:3::1"), "2001:db8:1:2::/64");
        assert_eq!(throttle_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(throttle_key("10.0.0.1"), "10.0.0.1");
    }
}
