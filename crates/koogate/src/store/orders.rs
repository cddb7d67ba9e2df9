//! Orders read from KooGallery's query-order API: order, lines, products. Buyer contact data is
//! sealed with the data key before it reaches this module.

use koogallery::model::openapi::{ExtendParam, OrderInfo};
use sqlx::{AnyConnection, Row};

use super::Result;
use super::uow::UnitOfWork;

fn params_json(params: Option<&Vec<ExtendParam>>) -> Option<String> {
    params
        .filter(|p| !p.is_empty())
        .and_then(|p| serde_json::to_string(p).ok())
}

/// Stores (or refreshes) an order with its lines and products, as steps of a unit of work.
pub fn save_in(unit: &mut UnitOfWork, order: &OrderInfo, buyer_sealed: Option<&str>, now_ms: i64) {
    let customer_id = order
        .buyer_info
        .as_ref()
        .and_then(|b| b.customer_id.clone());
    unit.push(
        "INSERT INTO orders (order_id, order_type, create_time, customer_id, buyer_sealed, extend_params, fetched_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO UPDATE SET order_type = excluded.order_type, \
         create_time = excluded.create_time, customer_id = excluded.customer_id, buyer_sealed = excluded.buyer_sealed, \
         extend_params = excluded.extend_params, fetched_at = excluded.fetched_at",
        vec![
            (&order.order_id).into(),
            (&order.order_type).into(),
            (&order.create_time).into(),
            customer_id.into(),
            buyer_sealed.into(),
            params_json(order.extend_params.as_ref()).into(),
            now_ms.into(),
        ],
    );
    for line in &order.order_line {
        unit.push(
            "INSERT INTO order_lines (order_line_id, order_id, charging_mode, period_type, period_number, expire_time, extend_params) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_line_id) DO UPDATE SET order_id = excluded.order_id, \
             charging_mode = excluded.charging_mode, period_type = excluded.period_type, period_number = excluded.period_number, \
             expire_time = excluded.expire_time, extend_params = excluded.extend_params",
            vec![
                (&line.order_line_id).into(),
                (&order.order_id).into(),
                (&line.charging_mode).into(),
                (&line.period_type).into(),
                line.period_number.as_ref().and_then(|n| n.as_i64()).into(),
                (&line.expire_time).into(),
                params_json(line.extend_params.as_ref()).into(),
            ],
        );
        unit.push(
            "DELETE FROM order_line_products WHERE order_line_id = $1",
            vec![(&line.order_line_id).into()],
        );
        for (position, p) in line.product_info.iter().flatten().enumerate() {
            unit.push(
                "INSERT INTO order_line_products (order_line_id, position, product_id, sku_code, linear_value, product_name) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    (&line.order_line_id).into(),
                    i64::try_from(position).unwrap_or(i64::MAX).into(),
                    p.product_id.clone().unwrap_or_default().into(),
                    (&p.sku_code).into(),
                    p.linear_value.as_ref().map(|v| v.as_str().to_owned()).into(),
                    (&p.product_name).into(),
                ],
            );
        }
    }
}

/// [`save_in`] inside a transaction the caller holds.
pub async fn save(
    conn: &mut AnyConnection,
    order: &OrderInfo,
    buyer_sealed: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    let mut unit = UnitOfWork::new();
    save_in(&mut unit, order, buyer_sealed, now_ms);
    super::uow::run_held(conn, &unit).await
}

/// Whether an order has been stored.
pub async fn exists(conn: &mut AnyConnection, order_id: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// An order as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub order_type: String,
    pub create_time: Option<String>,
    pub customer_id: Option<String>,
    pub fetched_at: i64,
}

/// Orders, most recently read first; `before` is the (fetched_at, order_id) cursor of the last
/// one of the previous page.
pub async fn list(
    conn: &mut AnyConnection,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<OrderRow>> {
    let (before_at, before_id) = before.unzip();
    let rows = sqlx::query(
        "SELECT order_id, order_type, create_time, customer_id, fetched_at FROM orders \
         WHERE ($1 IS NULL OR fetched_at < $1 OR (fetched_at = $1 AND order_id < $2)) \
         ORDER BY fetched_at DESC, order_id DESC LIMIT $3",
    )
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderRow {
                order_id: r.try_get("order_id")?,
                order_type: r.try_get("order_type")?,
                create_time: r.try_get("create_time")?,
                customer_id: r.try_get("customer_id")?,
                fetched_at: r.try_get("fetched_at")?,
            })
        })
        .collect()
}
