//! The one application error, mapped to a KooGallery result code and message.

use koogallery::ResultCode;

use crate::domain::instance::Refusal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Authentication or validation failed (`000001` / `000002`, per the protocol error).
    #[error(transparent)]
    Protocol(#[from] koogallery::Error),
    /// The nonce or authToken was already used within its window (`000002`).
    #[error("nonce was already used")]
    Replayed,
    /// No instance with this id (`000003`).
    #[error("instance {0} does not exist")]
    NotFound(String),
    /// The instance's state refuses the request.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Provisioning failed permanently with this code (e.g. `000100`).
    #[error("provisioning failed: {1}")]
    ProvisionFailed(ResultCode, String),
    /// A second line of an order arrived before the order was read: the call is applied again
    /// once it has been (the on-demand key, saas.md §5.1). Never answered as such.
    #[error("the order must be read before this order line can be created")]
    OrderUnread,
    /// The order could not be read from KooGallery while the call waited (`000005`); KooGallery
    /// calls again.
    #[error("order {0} cannot be read from KooGallery now")]
    OrderUnavailable(String),
    /// The merchant's provisioner could not be reached or failed for now (`000005`); KooGallery
    /// calls again.
    #[error("the provisioner did not answer: {0}")]
    ProvisionerUnavailable(String),
    /// Two writers raced on the same instance; KooGallery retries (`000005`).
    #[error("instance was changed concurrently")]
    Conflict,
    /// The database is unavailable or failed (`000005`); details stay in the log.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Store(StoreError::Db(e))
    }
}

impl AppError {
    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::Protocol(e) => e.result_code(),
            Self::Replayed => ResultCode::InvalidParam,
            Self::NotFound(_) | Self::Refused(Refusal::Gone(_)) => ResultCode::InstanceNotFound,
            Self::Refused(_)
            | Self::OrderUnread
            | Self::OrderUnavailable(_)
            | Self::ProvisionerUnavailable(_)
            | Self::Conflict
            | Self::Store(_) => ResultCode::InternalError,
            Self::ProvisionFailed(code, _) => *code,
        }
    }

    /// The `resultMsg`: the standard message, then what exactly failed. Database errors are not
    /// described to the caller.
    pub fn result_msg(&self) -> String {
        match self {
            Self::Protocol(e) => e.result_msg(),
            Self::Store(_) => self.result_code().message().to_owned(),
            other => format!("{}: {other}", other.result_code().message()),
        }
    }

    /// The audit verdict.
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Protocol(koogallery::Error::Auth(_)) => "unauthenticated",
            Self::Replayed => "replayed",
            Self::Protocol(_)
            | Self::NotFound(_)
            | Self::Refused(_)
            | Self::ProvisionFailed(..) => "rejected",
            Self::OrderUnread
            | Self::OrderUnavailable(_)
            | Self::ProvisionerUnavailable(_)
            | Self::Conflict
            | Self::Store(_) => "error",
        }
    }
}
