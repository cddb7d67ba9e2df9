//! The joint-operation kit (jointop.md) against the test merchant: after the SaaS V2 instance is
//! delivered, `tenantSync` → `applicationSync` → `allOrgSync` → `authSync` go to the kit paths,
//! signed with the kit key in the `x-sign` headers, with bodies the `koogallery` models accept
//! and a `clientSecret` only the merchant's private key decrypts; failures wait for a manual
//! restart; a release deletes the tenant; directory changes are synced on demand.

use crate::merchant::{self, Merchant, PRIVATE_KEY_PEM, Received, marketplace, marketplace_with};
use koogallery::crypto::rsa_oaep::{decrypt_client_secret, private_key_from_pem};
use koogallery::model::kit::KitRequest;
use koogallery_emulator::clock::{DAY_MS, HOUR_MS};
use koogallery_emulator::dispatch::console;
use koogallery_emulator::kit::SyncRequest;
use koogallery_emulator::marketplace::{EmuError, GRACE_MS, NO_PUBLIC_KEY};
use koogallery_emulator::state::{InstanceStatus, JobState, OrderKind, OrderStatus};
use koogallery_emulator::{Marketplace, OrderRequest};

const BINDING: [&str; 6] = [
    "newInstance",
    "queryInstance",
    "tenantSync",
    "applicationSync",
    "allOrgSync",
    "authSync",
];

async fn buy(m: &Marketplace, product: &str) -> String {
    let order = m
        .place_order(OrderRequest::new(OrderKind::New).product(product))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    order.resource_id
}

fn kit_calls(merchant: &Merchant) -> Vec<Received> {
    merchant
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/produceAPI/"))
        .collect()
}

/// The plaintext client secret the emulator keeps (listings redact it).
fn client_secret(m: &Marketplace, resource: &str) -> String {
    m.snapshot().instances[resource]
        .kit
        .as_ref()
        .unwrap()
        .client_secret
        .clone()
}

#[tokio::test]
async fn a_purchase_binds_the_tenant_application_organisation_and_users_in_order() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, "JOINT-YEAR").await;
    let instance = m.instance(&resource).unwrap();
    let instance_id = instance.instance_id.clone().unwrap();
    assert_eq!(instance.status, InstanceStatus::Active);
    assert_eq!(
        m.order(&instance.order_id).unwrap().status,
        OrderStatus::Completed
    );
    assert_eq!(merchant.activities(), BINDING);

    let kit = kit_calls(&merchant);
    assert_eq!(kit.len(), 4);
    for c in &kit {
        // x-sign over the raw body with the kit key, sent in upper case, on the kit path.
        assert!(c.verified && c.key == "kit", "{}", c.activity);
        let sign = c.x_sign.as_deref().unwrap();
        assert_eq!(sign, sign.to_uppercase());
        assert_eq!(c.path, format!("/produce/produceAPI/v2/{}", c.activity));
        // Every body is what the koogallery models accept (mandatory fields, lengths, flags,
        // UTC+8 timeStamp), numbers stay numbers.
        let decoded = KitRequest::decode(&c.activity, &c.raw).unwrap();
        assert_eq!(decoded.instance_id(), instance_id);
        assert!(!decoded.is_test());
        assert_eq!(c.fields["testFlag"], 0);
    }
    let tenant_id = kit[0].field("tenantId").unwrap().to_owned();
    assert!(kit.iter().all(|c| c.field("tenantId") == Some(&tenant_id)));

    let tenant = &kit[0];
    assert_eq!(tenant.fields["flag"], 1);
    assert_eq!(tenant.field("orderId"), Some(instance.order_id.as_str()));
    assert!(tenant.field("domainName").unwrap().starts_with("https://"));
    assert_eq!(tenant.field("name"), Some(instance.customer_name.as_str()));
    // Sent canonical (top-level keys sorted), so raw-body and sorted-key verifiers agree.
    let raw = String::from_utf8(tenant.raw.clone()).unwrap();
    assert!(raw.starts_with(r#"{"domainName":"#), "{raw}");

    let app = &kit[1];
    let app_id = app.field("appId").unwrap();
    assert_eq!(app.fields["flag"], 1);
    assert!(!app.field("clientId").unwrap().is_empty());
    let secret = client_secret(&m, &resource);
    let key = private_key_from_pem(PRIVATE_KEY_PEM).unwrap();
    let (plain, params) = decrypt_client_secret(&key, app.field("clientSecret").unwrap()).unwrap();
    assert_eq!(plain, secret);
    assert_eq!(params, koogallery_emulator::kit::OAEP);

    let orgs = &kit[2];
    let list = orgs.fields["orgInfoList"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["parentCode"], list[0]["orgCode"]);

    let users = &kit[3];
    assert_eq!(users.field("appId"), Some(app_id));
    assert_eq!(users.fields["flag"], 1);
    let user_list = users.fields["userList"].as_array().unwrap();
    assert_eq!(user_list.len(), 2);
    assert!(
        user_list.iter().all(|u| {
            u["enable"] == "true" && list.iter().any(|o| o["orgCode"] == u["orgCode"])
        })
    );

    // The emulator's records: verdicts, the kit URL, and no plaintext secret anywhere listed.
    let calls = m.calls();
    assert_eq!(calls.len(), 6);
    assert!(calls.iter().all(|c| c.verdict == "success"));
    assert!(calls[2].url.ends_with("/produce/produceAPI/v2/tenantSync"));
    assert_eq!(calls[3].result_code.as_deref(), Some("000000"));
    let listed = serde_json::to_string(&(m.instances(), m.calls(), m.jobs())).unwrap();
    assert!(!listed.contains(&secret));
    assert_eq!(
        m.instance(&resource).unwrap().kit.unwrap().client_secret,
        "<redacted>"
    );
    assert!(m.messages().is_empty());
}

#[tokio::test]
async fn a_failed_kit_answer_waits_in_the_messages_for_a_manual_restart() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    merchant.script(|s| s.kit_code = Some(("applicationSync".to_owned(), "000005".to_owned())));
    let resource = buy(&m, "JOINT-YEAR").await;
    assert_eq!(
        merchant.activities(),
        [
            "newInstance",
            "queryInstance",
            "tenantSync",
            "applicationSync"
        ]
    );
    let failed = m.calls().last().cloned().unwrap();
    assert_eq!(failed.activity, "applicationSync");
    assert_eq!(failed.verdict, "failed");
    assert_eq!(failed.result_code.as_deref(), Some("000005"));
    assert_eq!(failed.message.as_deref(), Some(console::RESULT_CODE));
    assert!(failed.detail.unwrap().contains("other internal error"));

    // No automatic retry (jointop.md §7): one attempt, then a message.
    let messages = m.messages();
    assert_eq!(messages.len(), 1);
    let msg = &messages[0];
    assert_eq!(
        (msg.activity.as_str(), msg.state.as_str()),
        ("applicationSync", "failed")
    );
    assert!(msg.restartable);
    m.advance(5 * HOUR_MS).await.unwrap();
    assert_eq!(merchant.calls().len(), 4);
    // The instance stays delivered; the kit does not fail the order.
    assert_eq!(
        m.instance(&resource).unwrap().status,
        InstanceStatus::Active
    );

    // The buyer retries: the restart sends it again and the chain goes on.
    merchant.script(|s| s.kit_code = None);
    m.restart(msg.id).await.unwrap();
    m.run_due().await.unwrap();
    assert_eq!(merchant.activities()[4..], BINDING[3..]);
    assert!(m.messages().is_empty());
    let job = m.jobs().into_iter().find(|j| j.id == msg.id).unwrap();
    assert_eq!((job.state, job.total_attempts), (JobState::Succeeded, 2));

    // Transport-level failures are judged like every call.
    merchant.clear();
    merchant.script(|s| s.fail_activity = Some(("authSync".to_owned(), 500)));
    m.sync_directory(
        &resource,
        &SyncRequest {
            kind: "auth".to_owned(),
            user_name: Some("wangwu".to_owned()),
            ..SyncRequest::default()
        },
    )
    .await
    .unwrap();
    m.run_due().await.unwrap();
    let failed = m.calls().last().cloned().unwrap();
    assert_eq!(failed.message, Some(console::http_code(500)));
    merchant.script(|s| {
        s.fail_activity = None;
        s.content_type = Some("text/plain".to_owned());
    });
    let id = m.messages()[0].id;
    m.restart(id).await.unwrap();
    m.run_due().await.unwrap();
    let failed = m.calls().last().cloned().unwrap();
    assert_eq!(failed.message.as_deref(), Some(console::CONTENT_TYPE));
}

#[tokio::test]
async fn without_the_merchants_public_key_application_sync_is_not_sent() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace_with(&merchant, None);
    let resource = buy(&m, "JOINT-YEAR").await;
    // tenantSync went out; applicationSync could not be encrypted, so was not sent.
    assert_eq!(merchant.activities(), BINDING[..3]);
    let messages = m.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].activity, "applicationSync");
    assert_eq!(messages[0].message, NO_PUBLIC_KEY);
    let call = m.calls().last().cloned().unwrap();
    assert_eq!((call.http_status, call.verdict.as_str()), (None, "failed"));

    // The seller uploads the key (on the product); the restart sends it.
    let mut product = m
        .products()
        .into_iter()
        .find(|p| p.product_id == "JOINT-YEAR")
        .unwrap();
    product.keys = koogallery_emulator::catalog::MerchantKeys::default();
    product.kit_public_key = Some(merchant::PUBLIC_KEY_PEM.to_owned());
    m.add_product(product.clone()).await.unwrap();
    m.restart(messages[0].id).await.unwrap();
    m.run_due().await.unwrap();
    assert_eq!(merchant.activities(), BINDING);
    let app = &kit_calls(&merchant)[1];
    let key = private_key_from_pem(PRIVATE_KEY_PEM).unwrap();
    let (plain, _) = decrypt_client_secret(&key, app.field("clientSecret").unwrap()).unwrap();
    assert_eq!(plain, client_secret(&m, &resource));

    // A product with a key that is not one is refused.
    product.kit_public_key = Some("-----BEGIN PUBLIC KEY-----\nnope\n".to_owned());
    assert!(matches!(
        m.add_product(product).await,
        Err(EmuError::BadRequest(_))
    ));
}

#[tokio::test]
async fn release_and_unsubscription_delete_the_tenant() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);

    // Unsubscription: releaseInstance with the unsubscribe order, then tenantSync flag 0.
    let first = buy(&m, "JOINT-YEAR").await;
    let tenant_id = kit_calls(&merchant)[0]
        .field("tenantId")
        .unwrap()
        .to_owned();
    merchant.clear();
    let unsubscribe = m
        .place_order(OrderRequest::new(OrderKind::Unsubscribe).resource(&first))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    assert_eq!(merchant.activities(), ["releaseInstance", "tenantSync"]);
    let delete = &merchant.calls()[1];
    assert!(delete.verified && delete.key == "kit");
    assert_eq!(delete.fields["flag"], 0);
    assert_eq!(delete.field("tenantId"), Some(tenant_id.as_str()));
    assert_eq!(delete.field("orderId"), Some(unsubscribe.order_id.as_str()));
    assert_eq!(
        delete.field("instanceId"),
        m.instance(&first).unwrap().instance_id.as_deref()
    );
    KitRequest::decode("tenantSync", &delete.raw).unwrap();
    assert_eq!(
        m.order(&unsubscribe.order_id).unwrap().status,
        OrderStatus::Completed
    );

    // Expiry: freeze, then after the grace period the release and the tenant deletion.
    let second = buy(&m, "JOINT-YEAR").await;
    let expiry = m.instance(&second).unwrap().expire_ms.unwrap();
    merchant.clear();
    m.advance(expiry - m.now_ms() + GRACE_MS + DAY_MS)
        .await
        .unwrap();
    assert_eq!(
        merchant.activities(),
        ["updateInstanceStatus", "releaseInstance", "tenantSync"]
    );
    assert_eq!(merchant.calls()[2].fields["flag"], 0);
    assert_eq!(
        merchant.calls()[2].field("orderId"),
        Some(m.instance(&second).unwrap().order_id.as_str())
    );
    assert_eq!(
        m.instance(&second).unwrap().status,
        InstanceStatus::Released
    );
}

#[tokio::test]
async fn directory_changes_are_synced_on_demand() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, "JOINT-YEAR").await;
    let app_id = kit_calls(&merchant)[1].field("appId").unwrap().to_owned();
    let sync = |r: SyncRequest| {
        let m = m.clone();
        let resource = resource.clone();
        async move {
            let job = m.sync_directory(&resource, &r).await?;
            m.run_due().await?;
            Ok::<_, EmuError>(job)
        }
    };

    merchant.clear();
    let job = sync(SyncRequest {
        kind: "auth".to_owned(),
        user_name: Some("lisi".to_owned()),
        role: Some("admin".to_owned()),
        ..SyncRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(job.activity, "authSync");
    let c = &merchant.calls()[0];
    assert!(c.verified);
    assert_eq!(c.activity, "authSync");
    assert_eq!(c.field("appId"), Some(app_id.as_str()));
    assert_eq!(c.fields["userList"][0]["userName"], "lisi");
    assert_eq!(c.fields["userList"][0]["role"], "admin");
    KitRequest::decode("authSync", &c.raw).unwrap();

    merchant.clear();
    sync(SyncRequest {
        kind: "auth".to_owned(),
        user_name: Some("lisi".to_owned()),
        flag: Some("cancel".to_owned()),
        ..SyncRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(merchant.calls()[0].fields["flag"], 3);

    merchant.clear();
    sync(SyncRequest {
        kind: "org".to_owned(),
        org_code: Some("sales".to_owned()),
        org_name: Some("Sales".to_owned()),
        ..SyncRequest::default()
    })
    .await
    .unwrap();
    sync(SyncRequest {
        kind: "all-org".to_owned(),
        ..SyncRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(merchant.activities(), ["singleOrgSync", "allOrgSync"]);
    let calls = merchant.calls();
    assert_eq!(calls[0].field("orgCode"), Some("sales"));
    assert_eq!(calls[0].fields["flag"], 1);
    KitRequest::decode("singleOrgSync", &calls[0].raw).unwrap();
    assert_eq!(calls[1].fields["orgInfoList"].as_array().unwrap().len(), 3);
    assert!(calls.iter().all(|c| c.verified));

    // Refusals: unknown kind, bad role, a non-joint resource, an unknown resource.
    let bad = |kind: &str| SyncRequest {
        kind: kind.to_owned(),
        user_name: Some("x".to_owned()),
        role: Some("root".to_owned()),
        ..SyncRequest::default()
    };
    assert!(matches!(
        sync(bad("users")).await,
        Err(EmuError::BadRequest(_))
    ));
    assert!(matches!(
        sync(bad("auth")).await,
        Err(EmuError::BadRequest(_))
    ));
    let saas = buy(&m, "V2-YEAR").await;
    assert!(matches!(
        m.sync_directory(&saas, &SyncRequest::default()).await,
        Err(EmuError::BadRequest(_))
    ));
    assert!(matches!(
        m.sync_directory("RES999999", &SyncRequest::default()).await,
        Err(EmuError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_control_api_syncs_a_directory_change() {
    use koogallery_emulator::catalog::MerchantKeys;
    use koogallery_emulator::server::{self, Config};
    use serde_json::{Value, json};

    let merchant = Merchant::start().await;
    let running = server::start(Config {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ak: merchant::AK.to_owned(),
        sk: merchant::SK.to_owned(),
        keys: MerchantKeys {
            basic: Some(merchant::KEY.to_owned()),
            kit: Some(merchant::KIT_KEY.to_owned()),
            ..MerchantKeys::default()
        },
        time_scale: 0.0,
        state: None,
        merchant_url: Some(merchant.url()),
        kit_public_key: Some(merchant::PUBLIC_KEY_PEM.to_owned()),
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let post = |path: String, body: Value| {
        let request = client.post(format!("{}{path}", running.url())).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, placed) = post(
        "/control/orders".to_owned(),
        json!({"kind": "new", "productId": "JOINT-YEAR"}),
    )
    .await;
    assert_eq!(status, 200);
    let activities: Vec<&str> = placed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["activity"].as_str().unwrap())
        .collect();
    assert_eq!(activities, BINDING);
    let resource = placed["order"]["resourceId"].as_str().unwrap().to_owned();

    let (status, synced) = post(
        format!("/control/instances/{resource}/sync"),
        json!({"kind": "auth", "userName": "lisi", "flag": "add"}),
    )
    .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["job"]["activity"], "authSync");
    assert_eq!(synced["calls"][0]["verdict"], "success");
    assert!(kit_calls(&merchant).last().unwrap().verified);

    let (status, refused) = post(
        format!("/control/instances/{resource}/sync"),
        json!({"kind": "auth", "flag": "add"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");

    let listed: Value = client
        .get(format!("{}/control/instances/{resource}", running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["kit"]["clientSecret"], "<redacted>");
    assert_eq!(listed["kit"]["users"].as_array().unwrap().len(), 3);
}
