//! Against a real PostgreSQL 15, started for each test from the machine's
//! packages (`bash .ci/run` runs these): two handles on one database are
//! two nodes of a cluster.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The harness the protocol's cluster tests use too.
#[path = "../../../tests/common/postgres.rs"]
mod postgres;

use postgres::Postgres;

use super::follow::follow;
use super::PgDb;
use crate::clock::Timestamp;
use crate::db::messages::NewMessage;
use crate::db::presence::PresenceStamp;
use crate::db::sessions::tests::session;
use crate::db::sessions::SessionInfo;
use crate::shutdown::ShutdownTrigger;

async fn user(db: &PgDb) -> i64 {
    db.client()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('ann', 'x', 0) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn message(user_id: i64, content: String) -> NewMessage {
    NewMessage {
        user_id,
        username: "ann".into(),
        content,
        file_id: None,
    }
}

/// Collects what `follow` delivers on a node, until the returned trigger.
fn follower(db: &PgDb, after: i64) -> (Arc<Mutex<Vec<i64>>>, ShutdownTrigger) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (trigger, shutdown) = ShutdownTrigger::new();
    let sink = seen.clone();
    tokio::spawn(follow(db.clone(), after, shutdown, move |m| {
        sink.lock().unwrap().push(m.id)
    }));
    (seen, trigger)
}

async fn wait_for(seen: &Mutex<Vec<i64>>, count: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.lock().unwrap().clone()
}

/// A fresh PostgreSQL and two nodes on it, started together (so their
/// schema creation races).
async fn two_nodes() -> (Postgres, PgDb, PgDb) {
    let postgres = Postgres::start();
    let (a, b) = tokio::join!(PgDb::connect(&postgres.url), PgDb::connect(&postgres.url));
    (postgres, a.unwrap(), b.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn concurrent_senders_on_two_nodes_get_gapless_ids_that_both_nodes_deliver_in_order() {
    let (_postgres, a, b) = two_nodes().await;
    let user_id = user(&a).await;
    let (seen_a, _stop_a) = follower(&a, 0);
    let (seen_b, _stop_b) = follower(&b, 0);
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        for node in [a.clone(), b.clone()] {
            senders.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let sent = node.append_message(message(user_id, format!("{sender}/{i}"))).await;
                    ids.push(sent.unwrap().id);
                }
                ids
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for sender in senders {
        let ids = sender.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one sender's ids ascend: {ids:?}");
        acknowledged.extend(ids);
    }
    let total = SENDERS * EACH * 2;
    acknowledged.sort_unstable();
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(acknowledged, expected, "no gap, no duplicate");
    assert_eq!(
        wait_for(&seen_a, total).await,
        expected,
        "node A delivers every id once, in order"
    );
    assert_eq!(
        wait_for(&seen_b, total).await,
        expected,
        "node B delivers every id once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_reader_resuming_on_the_other_node_misses_nothing() {
    let postgres = Postgres::start();
    let a = PgDb::connect(&postgres.url).await.unwrap();
    let user_id = user(&a).await;
    for i in 0..10 {
        a.append_message(message(user_id, format!("m{i}"))).await.unwrap();
    }
    let b = PgDb::connect(&postgres.url).await.unwrap();
    let after: Vec<_> = b.messages_after(4, 100).await.unwrap();
    assert_eq!(
        after.iter().map(|m| m.id).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );
    assert_eq!(after[0].content, "m4");
    let before = b.messages_before(i64::MAX, 3).await.unwrap();
    assert_eq!(before.iter().map(|m| m.id).collect::<Vec<_>>(), [10, 9, 8]);
    // A node following from an id delivers the rest, then what comes next.
    let (seen, _stop) = follower(&b, 7);
    assert_eq!(wait_for(&seen, 3).await, [8, 9, 10]);
    a.append_message(message(user_id, "late".into())).await.unwrap();
    assert_eq!(wait_for(&seen, 4).await, [8, 9, 10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_file_message_takes_no_id_when_its_file_is_not_the_senders() {
    let postgres = Postgres::start();
    let a = PgDb::connect(&postgres.url).await.unwrap();
    let user_id = user(&a).await;
    let mut share = message(user_id, "a.txt".into());
    share.file_id = Some("missing".into());
    let refused = a.append_message(share).await;
    assert!(matches!(refused, Err(crate::db::DbError::NotFound(_))));
    let next = a.append_message(message(user_id, "plain".into())).await.unwrap();
    assert_eq!(next.id, 1, "the refused message left no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn every_node_shares_the_first_stored_secret_and_epoch() {
    let (postgres, a, b) = two_nodes().await;
    let secret = a.jwt_secret([1; 32]).await.unwrap();
    assert_eq!(secret, [1; 32]);
    assert_eq!(b.jwt_secret([2; 32]).await.unwrap(), secret);
    let epoch = a.epoch().await.unwrap();
    assert_eq!(epoch.len(), 32);
    assert_eq!(b.epoch().await.unwrap(), epoch);
    drop(b);
    let again = PgDb::connect(&postgres.url).await.unwrap();
    assert_eq!(
        again.epoch().await.unwrap(),
        epoch,
        "the schema is created once, idempotently"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn accounts_and_sessions_made_on_one_node_hold_on_the_other() {
    let (_postgres, a, b) = two_nodes().await;
    let ann = a.create_user("Ann".into(), "h1".into()).await.unwrap().unwrap();
    assert!(
        b.create_user("ANN".into(), "h2".into()).await.unwrap().is_none(),
        "taken in any case"
    );
    let bob = b.create_user("bob".into(), "h".into()).await.unwrap().unwrap().id;
    let found = b.credentials("ann".into()).await.unwrap().unwrap();
    assert_eq!((found.user, found.password_hash.as_str()), (ann.clone(), "h1"));
    assert_eq!(a.user(bob).await.unwrap().unwrap().username, "bob");
    assert!(a.user(999).await.unwrap().is_none());

    let started = Timestamp::now();
    for (id, user, life) in [
        ("a1", ann.id, 60_000),
        ("a2", ann.id, 60_000),
        ("old", ann.id, -1),
        ("b1", bob, 60_000),
    ] {
        a.create_session(session(id, user, life)).await.unwrap();
    }
    let mut opened: Vec<_> = b
        .issued_since(started)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    opened.sort();
    assert_eq!(opened, ["a1", "a2", "b1"], "the live ones, seen by the other node");
    let ids = |list: Vec<SessionInfo>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let mut listed = ids(b.sessions_of(ann.id).await.unwrap());
    listed.sort();
    assert_eq!(listed, ["a1", "a2"]);
    assert!(b
        .revoke_sessions(ann.id, Some("b1".into()), None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.revoke_sessions(ann.id, Some("a1".into()), None).await.unwrap(),
        ["a1"]
    );
    assert!(
        b.revoke_sessions(ann.id, Some("a1".into()), None)
            .await
            .unwrap()
            .is_empty(),
        "once only"
    );
    assert_eq!(
        a.revoked_since(started).await.unwrap(),
        ["a1"],
        "seen by the other node"
    );
    assert!(!a.refresh_session("a1".into(), Timestamp(i64::MAX)).await.unwrap());
    assert!(a.refresh_session("a2".into(), Timestamp::now()).await.unwrap());
    a.touch_sessions(vec![("b1".into(), i64::MAX - 1)]).await.unwrap();
    let touched = b.sessions_of(bob).await.unwrap();
    assert_eq!(touched[0].last_used_at, Timestamp(i64::MAX - 1));
    assert!(a
        .change_password(bob, "new".into(), "b1".into())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.credentials("bob".into()).await.unwrap().unwrap().password_hash, "new");
    let mut live: Vec<_> = b.live_sessions().await.unwrap().into_iter().map(|s| s.id).collect();
    live.sort();
    assert_eq!(live, ["a2", "b1"]);
    let mut revoked = a.change_password(ann.id, "x".into(), "b1".into()).await.unwrap();
    revoked.sort();
    assert_eq!(
        revoked,
        ["a2", "old"],
        "every session not revoked yet, the expired one too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn after_postgresql_restarts_a_node_reconnects_and_its_follower_catches_up() {
    let (postgres, a, b) = two_nodes().await;
    let user_id = user(&a).await;
    let (seen, _stop) = follower(&b, 0);
    a.append_message(message(user_id, "before".into())).await.unwrap();
    postgres.restart();
    // A call that finds its connection cut is answered unavailable; the
    // next one connects again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match a.append_message(message(user_id, "after".into())).await {
            Ok(stored) => break stored,
            Err(crate::db::DbError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not recovered: {e}"),
        }
    };
    assert_eq!(after.id, 2);
    assert_eq!(wait_for(&seen, 2).await, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_node_knows_when_it_has_lost_postgresql_and_when_it_has_it_back() {
    let (postgres, a, _b) = two_nodes().await;
    let (_seen, _stop) = follower(&a, 0);
    assert!(a.is_reachable());
    a.check_health().await.unwrap();
    let lost = a.lost();
    postgres.stop();
    tokio::time::timeout(Duration::from_secs(2), lost)
        .await
        .expect("the loss is noticed within 2 s");
    assert!(!a.is_reachable());
    assert!(matches!(
        a.check_health().await,
        Err(crate::db::DbError::Unavailable(_))
    ));
    postgres.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.is_reachable() {
        assert!(Instant::now() < deadline, "not reachable again after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.check_health().await.unwrap();
}

// Files and share links.

/// A file row of `uploaded_by` (named `uploader`), created at `at`.
fn file_row(id: &str, uploaded_by: i64, uploader: &str, at: i64) -> crate::db::files::FileRow {
    crate::db::files::FileRow {
        id: id.into(),
        filename: format!("{id}.txt"),
        size: 5_000_000_000,
        content_type: "text/plain".into(),
        sha256: "ab".repeat(32),
        uploaded_by,
        uploader: uploader.into(),
        created_at: Timestamp(at),
        shared: false,
    }
}

fn new_link(id: &str, file_id: &str, token_hash: [u8; 32], expires_at: i64) -> crate::db::links::NewLink {
    crate::db::links::NewLink {
        id: id.into(),
        file_id: file_id.into(),
        token_hash,
        created_at: Timestamp::now(),
        expires_at: Timestamp(expires_at),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn files_and_links_made_on_one_node_hold_on_the_other_until_deleted() {
    use crate::db::files::{Deletion, Listing};
    use crate::db::links::LinkTarget;
    use crate::db::DbError;

    let (_postgres, a, b) = two_nodes().await;
    let ann = a.create_user("ann".into(), "h".into()).await.unwrap().unwrap().id;
    let bob = a.create_user("bob".into(), "h".into()).await.unwrap().unwrap().id;
    for (i, id) in ["f1", "f2", "f3"].into_iter().enumerate() {
        a.insert_file(file_row(id, ann, "ann", i as i64)).await.unwrap();
    }
    a.insert_file(file_row("g1", bob, "bob", 9)).await.unwrap();
    assert_eq!(b.file("f1".into()).await.unwrap(), Some(file_row("f1", ann, "ann", 0)));
    assert_eq!(b.file("nope".into()).await.unwrap(), None);
    let ids = |rows: Vec<crate::db::files::FileRow>| rows.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let mine = b.files_page(Listing::UploadedBy(ann), 0, 10).await.unwrap();
    assert_eq!(ids(mine), ["f3", "f2", "f1"], "newest first");
    let page = b.files_page(Listing::UploadedBy(ann), 1, 1).await.unwrap();
    assert_eq!(ids(page), ["f2"], "offset and limit");
    assert!(b.files_page(Listing::Shared, 0, 10).await.unwrap().is_empty());
    let mut share = message(ann, "f1.txt".into());
    share.file_id = Some("f1".into());
    let shared = a.append_message(share).await.unwrap();
    assert_eq!(shared.file.as_ref().unwrap().id, "f1");
    let room = b.files_page(Listing::Shared, 0, 10).await.unwrap();
    assert_eq!(ids(room.clone()), ["f1"]);
    assert!(room[0].shared);

    let now = Timestamp::now();
    a.insert_link(new_link("l1", "f1", [1; 32], now.0 + 60_000))
        .await
        .unwrap();
    a.insert_link(new_link("l2", "f1", [2; 32], now.0 + 60_000))
        .await
        .unwrap();
    a.insert_link(new_link("old", "f1", [3; 32], now.0 - 1)).await.unwrap();
    let missing = a.insert_link(new_link("l3", "nope", [4; 32], now.0 + 60_000)).await;
    assert!(matches!(missing, Err(DbError::NotFound(_))));
    let mut live: Vec<_> = b
        .live_links("f1".into(), now)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    live.sort();
    assert_eq!(live, ["l1", "l2"], "the expired link is not live");
    assert!(matches!(b.link_target([1; 32], now).await.unwrap(), LinkTarget::Live(f) if f.id == "f1"));
    assert_eq!(b.link_target([3; 32], now).await.unwrap(), LinkTarget::Ended, "expired");
    assert_eq!(b.link_target([9; 32], now).await.unwrap(), LinkTarget::Unknown);
    assert!(
        !a.revoke_link("f2".into(), "l1".into(), now).await.unwrap(),
        "not f2's link"
    );
    assert!(a.revoke_link("f1".into(), "l1".into(), now).await.unwrap());
    assert!(
        !a.revoke_link("f1".into(), "l1".into(), now).await.unwrap(),
        "once only"
    );
    assert_eq!(b.link_target([1; 32], now).await.unwrap(), LinkTarget::Ended, "revoked");

    assert_eq!(b.delete_owned_file("f1".into(), bob).await.unwrap(), Deletion::NotOwner);
    assert_eq!(b.delete_owned_file("f2".into(), bob).await.unwrap(), Deletion::NotFound);
    assert_eq!(
        b.delete_owned_file("nope".into(), bob).await.unwrap(),
        Deletion::NotFound
    );
    assert!(b.files_deleted_since(now).await.unwrap().is_empty());
    assert_eq!(b.delete_owned_file("f1".into(), ann).await.unwrap(), Deletion::Deleted);
    assert_eq!(b.delete_owned_file("f1".into(), ann).await.unwrap(), Deletion::NotFound);
    assert_eq!(a.file("f1".into()).await.unwrap(), None);
    let history = a.messages_after(0, 10).await.unwrap();
    assert_eq!(
        (history[0].id, history[0].file.as_ref()),
        (shared.id, None),
        "no file key"
    );
    assert_eq!(
        a.link_target([2; 32], now).await.unwrap(),
        LinkTarget::Unknown,
        "its links went with it"
    );
    let late = a.insert_link(new_link("l4", "f1", [5; 32], now.0 + 60_000)).await;
    assert!(matches!(late, Err(DbError::NotFound(_))));
    let deleted = a.files_deleted_since(now).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].0, "f1", "the deletion is recorded for every node");
    assert!(a
        .files_deleted_since(Timestamp(now.0 + 3_600_000))
        .await
        .unwrap()
        .is_empty());
    assert!(b.file_ids().await.unwrap().contains("g1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_file_deleted_while_it_is_shared_on_the_other_node_is_left_in_no_message() {
    let (_postgres, a, b) = two_nodes().await;
    let ann = a.create_user("ann".into(), "h".into()).await.unwrap().unwrap().id;
    for round in 0..20 {
        let id = format!("race{round}");
        a.insert_file(file_row(&id, ann, "ann", round)).await.unwrap();
        let shares: Vec<_> = (0..5)
            .map(|_| {
                let mut share = message(ann, id.clone());
                share.file_id = Some(id.clone());
                tokio::spawn(a.append_message(share))
            })
            .collect();
        let deleted = b.delete_owned_file(id.clone(), ann).await.unwrap();
        assert_eq!(deleted, crate::db::files::Deletion::Deleted);
        for share in shares {
            // Either before the deletion (then cleared by it) or refused.
            let _ = share.await.unwrap();
        }
        let left: i64 = a
            .client()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM messages WHERE file_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "round {round}: a message still names the deleted file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn deletions_are_recorded_after_a_restart_and_pruned_once_a_day_old() {
    let (postgres, a, b) = two_nodes().await;
    let ann = a.create_user("ann".into(), "h".into()).await.unwrap().unwrap().id;
    let now = Timestamp::now().0;
    a.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO file_deletions (file_id, deleted_at) VALUES ('old', $1), ('recent', $2)",
            &[&(now - 25 * 3600 * 1000), &(now - 3600 * 1000)],
        )
        .await
        .unwrap();
    a.insert_file(file_row("f1", ann, "ann", 0)).await.unwrap();
    a.insert_file(file_row("f2", ann, "ann", 1)).await.unwrap();
    assert_eq!(
        b.delete_owned_file("f1".into(), ann).await.unwrap(),
        crate::db::files::Deletion::Deleted
    );
    postgres.restart();
    // The transaction's own connection is opened again like the others.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.delete_owned_file("f2".into(), ann).await {
            Ok(deletion) => break assert_eq!(deletion, crate::db::files::Deletion::Deleted),
            Err(crate::db::DbError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not recovered: {e}"),
        }
    }
    let mut kept: Vec<String> = loop {
        match a.files_deleted_since(Timestamp(0)).await {
            Ok(rows) => break rows.into_iter().map(|(id, _)| id).collect(),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("not recovered: {e}"),
        }
    };
    kept.sort();
    assert_eq!(kept, ["f1", "f2", "recent"], "the day-old record is pruned");
}

// The cluster's identity, which the shared uploads directory's marker
// repeats.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn claims_of_the_cluster_id_are_taken_one_at_a_time_and_the_first_stored_wins() {
    let (_postgres, a, b) = two_nodes().await;
    let first = a.claim_cluster().await.unwrap();
    assert_eq!(first.stored, None);
    // The other node's claim waits for the first to end.
    let waiting = tokio::spawn(async move { b.claim_cluster().await.unwrap().stored });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a second claim went ahead while the first was open"
    );
    first.store("c1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the lock was let go before the claim ended (the marker is put in place meanwhile)"
    );
    drop(first);
    assert_eq!(waiting.await.unwrap().as_deref(), Some("c1"));
    // A claim dropped without storing leaves what was stored.
    let dropped = a.claim_cluster().await.unwrap();
    assert_eq!(dropped.stored.as_deref(), Some("c1"));
    drop(dropped);
    assert_eq!(a.claim_cluster().await.unwrap().stored.as_deref(), Some("c1"));
}

// Presence across nodes.

/// The users node `db` reads as online elsewhere, sorted.
async fn elsewhere(db: &PgDb) -> Vec<(i64, String)> {
    let read = db.presence_elsewhere(&PresenceStamp::default()).await.unwrap();
    let mut users: Vec<_> = read.map(|(_, users)| users.into_iter().collect()).unwrap_or_default();
    users.sort();
    users
}

fn users(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|(id, name)| (*id, name.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn each_node_reads_the_users_the_other_live_nodes_published() {
    let (_postgres, a, b) = two_nodes().await;
    assert!(
        !b.update_presence(users(&[(2, "bob")]), vec![]).await.unwrap(),
        "changes do not bring in a node that never published its set"
    );
    assert!(elsewhere(&a).await.is_empty(), "and are not written");
    a.publish_presence(users(&[(1, "ann"), (2, "bob")])).await.unwrap();
    b.publish_presence(users(&[(2, "bob")])).await.unwrap();
    assert_eq!(elsewhere(&b).await, users(&[(1, "ann"), (2, "bob")]));
    assert_eq!(
        elsewhere(&a).await,
        users(&[(2, "bob")]),
        "a node's own users are not elsewhere"
    );
    a.publish_presence(users(&[(2, "bob"), (3, "cid")])).await.unwrap();
    assert_eq!(
        elsewhere(&b).await,
        users(&[(2, "bob"), (3, "cid")]),
        "a publication replaces the node's whole set"
    );
    assert!(a.update_presence(users(&[(4, "dan")]), vec![2]).await.unwrap());
    assert_eq!(
        elsewhere(&b).await,
        users(&[(3, "cid"), (4, "dan")]),
        "changes add and remove users"
    );
    let (stamp, _) = b.presence_elsewhere(&PresenceStamp::default()).await.unwrap().unwrap();
    assert!(
        a.update_presence(vec![], vec![]).await.unwrap(),
        "a heartbeat of a live node"
    );
    assert!(
        b.presence_elsewhere(&stamp).await.unwrap().is_none(),
        "nothing to read while no set changed"
    );
    a.update_presence(vec![], vec![4]).await.unwrap();
    let (_, changed) = b.presence_elsewhere(&stamp).await.unwrap().unwrap();
    assert_eq!(changed.len(), 1, "a change changes the stamp");
    b.withdraw_presence().await.unwrap();
    assert!(elsewhere(&a).await.is_empty(), "a node withdrawn counts no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 15 (bash .ci/run runs it)"]
async fn a_node_whose_heartbeat_is_stale_is_dropped_and_must_publish_again() {
    let (_postgres, a, b) = two_nodes().await;
    a.publish_presence(users(&[(1, "ann")])).await.unwrap();
    assert_eq!(elsewhere(&b).await, users(&[(1, "ann")]));
    // Five seconds without a heartbeat, as if the node had been killed.
    a.client()
        .await
        .unwrap()
        .execute(
            "UPDATE nodes SET heartbeat_at = heartbeat_at - interval '5 seconds' WHERE id = $1",
            &[&&*a.node],
        )
        .await
        .unwrap();
    assert!(elsewhere(&b).await.is_empty(), "a stale node's users are ignored");
    let rows: i64 = b
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM presence", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "and deleted with their node by the node that read");
    assert!(
        !a.update_presence(vec![], vec![]).await.unwrap(),
        "the dropped node learns of it at its next heartbeat"
    );
    a.publish_presence(users(&[(1, "ann")])).await.unwrap();
    assert_eq!(
        elsewhere(&b).await,
        users(&[(1, "ann")]),
        "and is back once it published"
    );
}

#[test]
fn a_url_asking_for_tls_is_refused_and_connecting_is_bounded() {
    let refused = super::config("postgres://chat@db.example/chat?sslmode=require");
    assert!(
        matches!(&refused, Err(crate::db::DbError::Other(why)) if why.contains("without TLS")),
        "{:?}",
        refused.err()
    );
    let config = super::config("postgres://chat@db.example/chat").unwrap();
    assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
    let config = super::config("postgres://chat@db.example/chat?connect_timeout=2").unwrap();
    assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
}
