//! Application services: the business rules of each aggregate. A service reads what it needs,
//! decides, and returns the changes it wants made as a [`UnitOfWork`](crate::store::uow::UnitOfWork);
//! the caller commits it. Services never hold a transaction across a decision: every decision
//! that depends on a read is guarded in the unit by a compare-and-set on what was read.

pub mod instances;
