//! The field-length check names the field at fault by its JSON path, below the
//! path it was given (`data.items[1].sku`), object keys included.

use loggier_relay::model::check_lengths;
use serde_json::json;

#[test]
fn a_value_within_the_limits_passes() {
    let v = json!({
        "user": {"id": "u-42", "roles": ["admin", "ops"], "name": "Ada"},
        "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-2", "qty": 1}],
        "note": "x".repeat(64),
    });
    check_lengths(&v, "data", 64).expect("within the limits");
    check_lengths(&v, "", 64).expect("within the limits");
}

#[test]
fn a_string_over_the_limit_is_named_by_its_path() {
    let long = "x".repeat(65);
    let v = json!({"items": [{"sku": "a-1"}, {"sku": long}]});
    let e = check_lengths(&v, "data", 64).expect_err("too long");
    assert_eq!(e.code, "field_too_long");
    assert_eq!(e.path.as_deref(), Some("data.items[1].sku"));
    let e = check_lengths(&v, "", 64).expect_err("too long");
    assert_eq!(e.path.as_deref(), Some("items[1].sku"));
    let key = "k".repeat(65);
    let v = json!({"a": [[{ key.clone(): 1 }]]});
    let e = check_lengths(&v, "ctx", 64).expect_err("key too long");
    assert_eq!(e.path, Some(format!("ctx.a[0][0].{key}")));
    let e = check_lengths(&json!(long), "message", 64).expect_err("too long");
    assert_eq!(e.path.as_deref(), Some("message"));
}
