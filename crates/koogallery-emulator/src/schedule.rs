//! KooGallery's retry schedules, as data (saas.md §8 and §13.11, license.md §3.5, §4.4, §5.2,
//! jointop.md §7).
//!
//! A schedule is "attempt now, then every `interval` until `attempts` calls were made"; when the
//! last one fails, either the order fails and is refunded, or the call waits in the
//! production-interface messages (生产接口消息) for a manual restart.

use serde::{Deserialize, Serialize};

use crate::catalog::Family;
use crate::clock::{HOUR_MS, MINUTE_MS};

/// What happens when the last scheduled attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exhausted {
    /// The order fails and is automatically unsubscribed and refunded.
    FailOrder,
    /// The call stays in the production-interface messages until restarted by hand.
    ManualRestart,
}

/// A retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Calls in total, the first included.
    pub attempts: u32,
    /// Emulated milliseconds between two calls.
    pub interval_ms: i64,
    pub exhausted: Exhausted,
}

impl Schedule {
    const fn hourly(hours: u32, exhausted: Exhausted) -> Self {
        Self {
            attempts: hours + 1,
            interval_ms: HOUR_MS,
            exhausted,
        }
    }

    const fn every_2_min(retries: u32, exhausted: Exhausted) -> Self {
        Self {
            attempts: retries + 1,
            interval_ms: 2 * MINUTE_MS,
            exhausted,
        }
    }

    /// Called once; a failure waits for a manual restart.
    pub const ONCE: Schedule = Schedule {
        attempts: 1,
        interval_ms: HOUR_MS,
        exhausted: Exhausted::ManualRestart,
    };

    /// Called once; a failure fails the order (a synchronous check such as
    /// `changeInstanceCheck`).
    pub const ONCE_OR_FAIL: Schedule = Schedule {
        attempts: 1,
        interval_ms: HOUR_MS,
        exhausted: Exhausted::FailOrder,
    };
}

/// The polling of `queryInstance` after `newInstance` returned an `instanceId` (saas.md §5.2,
/// §6): the documentation says only "until the merchant successfully returns instance
/// information". The emulator polls every minute for 3 hours (the `newInstance` window), then
/// fails and refunds the order.
pub const QUERY_POLL: Schedule = Schedule {
    attempts: 181,
    interval_ms: MINUTE_MS,
    exhausted: Exhausted::FailOrder,
};

/// The schedule KooGallery applies to `activity` of `family`.
pub fn for_call(family: Family, activity: &str) -> Schedule {
    use Exhausted::{FailOrder, ManualRestart};
    match (family, activity) {
        // saas.md §8 / §13.11: hourly for 3 hours, then the order fails and is refunded.
        (
            Family::SaasV2 | Family::SaasV1 | Family::JointOperation,
            "newInstance" | "upgradeInstance" | "upgrade",
        ) => Schedule::hourly(3, FailOrder),
        (_, "queryInstance") => QUERY_POLL,
        // jointop.md §7: no automatic retry schedule is published for the kit. A failed
        // tenantSync/applicationSync is retried when the buyer decides so in the console, a
        // failed authSync when the enterprise administrator does: one attempt, then the call
        // waits for a manual restart (that decision).
        (_, "tenantSync" | "applicationSync" | "authSync" | "singleOrgSync" | "allOrgSync") => {
            Schedule::ONCE
        }
        // saas.md §8: not published; as the other V2 notifications, 1 hour.
        (_, "orderNotify") => Schedule::hourly(1, ManualRestart),
        (_, "changeInstanceCheck") => Schedule::ONCE_OR_FAIL,
        // saas.md §8: one V2 page says 2 h for refresh and 1 h for status; release unpublished
        // for V2, 1 h for V1. Hourly attempts within those windows, then manual restart.
        (Family::SaasV2 | Family::JointOperation, "refreshInstance") => {
            Schedule::hourly(2, ManualRestart)
        }
        (Family::SaasV2 | Family::JointOperation, _) => Schedule::hourly(1, ManualRestart),
        (Family::SaasV1, _) => Schedule::hourly(1, ManualRestart),
        // license.md §3.5: getLicense hourly for 3 hours, then stops (no refund: the order
        // waits at the delivery node); refresh and release are called once.
        (Family::License1, "getLicense") => Schedule::hourly(3, ManualRestart),
        (Family::License1, _) => Schedule::ONCE,
        // license.md §4.4: newInstance every 2 minutes for 2 hours; refresh and status for 2
        // hours (interval unpublished: every 2 minutes as well); getLicenseAsync unpublished:
        // as refresh (the eventId stays the same on retries, §4.1); release as SaaS V2.
        (Family::OnlineLicense, "newInstance") => Schedule::every_2_min(60, FailOrder),
        (Family::OnlineLicense, "refreshInstance" | "updateInstanceStatus" | "getLicenseAsync") => {
            Schedule::every_2_min(60, ManualRestart)
        }
        (Family::OnlineLicense, _) => Schedule::hourly(1, ManualRestart),
        // license.md §5.2: 60 retries, every 2 minutes.
        (Family::LicenseCode2, _) => Schedule::every_2_min(60, ManualRestart),
    }
}

/// Every (family, activity) with its schedule, for documentation and the control API.
pub fn table() -> Vec<(Family, &'static str, Schedule)> {
    let rows: [(Family, &[&str]); 6] = [
        (
            Family::SaasV2,
            &[
                "newInstance",
                "queryInstance",
                "upgradeInstance",
                "changeInstanceCheck",
                "refreshInstance",
                "updateInstanceStatus",
                "releaseInstance",
            ],
        ),
        (
            Family::SaasV1,
            &[
                "newInstance",
                "upgrade",
                "refreshInstance",
                "expireInstance",
                "releaseInstance",
            ],
        ),
        (
            Family::License1,
            &[
                "getLicense",
                "refreshLicense",
                "expireLicense",
                "releaseLicense",
            ],
        ),
        (
            Family::OnlineLicense,
            &[
                "newInstance",
                "getLicenseAsync",
                "refreshInstance",
                "updateInstanceStatus",
                "releaseInstance",
            ],
        ),
        (
            Family::LicenseCode2,
            &[
                "refreshLicenseCode",
                "updateLicenseCodeStatus",
                "releaseLicenseCode",
            ],
        ),
        (
            Family::JointOperation,
            &[
                "newInstance",
                "tenantSync",
                "applicationSync",
                "allOrgSync",
                "authSync",
                "singleOrgSync",
            ],
        ),
    ];
    rows.iter()
        .flat_map(|(f, acts)| acts.iter().map(move |a| (*f, *a, for_call(*f, a))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_figures() {
        let new = for_call(Family::SaasV2, "newInstance");
        assert_eq!((new.attempts, new.interval_ms), (4, HOUR_MS));
        assert_eq!(new.exhausted, Exhausted::FailOrder);
        let code = for_call(Family::LicenseCode2, "refreshLicenseCode");
        assert_eq!((code.attempts, code.interval_ms), (61, 2 * MINUTE_MS));
        let lic = for_call(Family::License1, "releaseLicense");
        assert_eq!(lic.attempts, 1);
        assert_eq!(
            for_call(Family::SaasV1, "expireInstance").exhausted,
            Exhausted::ManualRestart
        );
        assert!(table().len() > 20);
        let kit = for_call(Family::JointOperation, "applicationSync");
        assert_eq!((kit.attempts, kit.exhausted), (1, Exhausted::ManualRestart));
    }
}
