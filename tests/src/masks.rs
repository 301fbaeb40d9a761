//! docs/domain.md's masks ("Masks (Chinese practice)"), written out here from their definitions
//! so that the tests' expected masked values never come from the hub's own mask functions
//! (`gridhub_normalize::mask_*`, the `gh_mask_*` UDFs): a wrong mask in the hub then fails
//! a test instead of agreeing with itself.

use std::collections::BTreeMap;

/// `420106198001011234` → `420106********1234`: the region (first 6) and the last 4 kept.
pub fn id_number(clear: &str) -> String {
    assert!(
        clear.is_ascii() && clear.len() > 10,
        "not a resident ID number: {clear}"
    );
    let stars = clear.len() - 10;
    format!(
        "{}{}{}",
        &clear[..6],
        "*".repeat(stars),
        &clear[clear.len() - 4..]
    )
}

/// `13812345678` → `138****5678`: the first 3 and last 4 characters kept (a landline such
/// as `027-87189541` the same way: `027*****9541`).
pub fn phone(clear: &str) -> String {
    let chars: Vec<char> = clear.chars().collect();
    assert!(chars.len() > 7, "not a phone number: {clear}");
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// Two-character surnames, kept whole by the name mask (docs/domain.md: "two-character compound
/// surnames known"): the classical compound surnames, among them every one the synthetic
/// city gives its residents.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "令狐", "慕容", "司徒", "夏侯", "尉迟", "公孙",
    "长孙", "宇文", "轩辕", "钟离", "澹台", "端木", "南宫", "西门", "独孤", "呼延", "赫连", "闻人",
];

/// `欧阳明` → `欧阳*`, `王小明` → `王**`: the surname kept, one star per other character.
pub fn name(clear: &str) -> String {
    let surname: String = match COMPOUND_SURNAMES.iter().find(|s| clear.starts_with(*s)) {
        Some(s) => (*s).to_owned(),
        None => clear.chars().take(1).collect(),
    };
    let rest = clear.chars().count() - surname.chars().count();
    assert!(rest > 0, "a name without a given name: {clear}");
    format!("{surname}{}", "*".repeat(rest))
}

/// `1980-05-17` → `1980-01-01`: the year kept (docs/domain.md shows `1980`; the column stays a
/// date, so the year reads as its 1 January).
pub fn birth_date(clear: &str) -> String {
    let year = clear
        .get(..4)
        .filter(|y| y.bytes().all(|b| b.is_ascii_digit()));
    format!(
        "{}-01-01",
        year.unwrap_or_else(|| panic!("not a date: {clear}"))
    )
}

/// A masked place: the name of the community (the first 12 digits) of the row's area code.
pub fn place(area_code: &str, communities: &BTreeMap<String, String>) -> Option<String> {
    communities.get(area_code.get(..12)?).cloned()
}

/// The mask of `column`'s clear value, for the columns docs/domain.md masks by value (`name`
/// and a reporter's name alike: a reporter is a resident); `None` for other columns.
pub fn of_column(column: &str, clear: &str) -> Option<String> {
    match column {
        "id_number" => Some(id_number(clear)),
        "name" | "reported_by" => Some(name(clear)),
        "phone" => Some(phone(clear)),
        "birth_date" => Some(birth_date(clear)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_examples_of_domain_md() {
        assert_eq!(super::id_number("420106198001011234"), "420106********1234");
        assert_eq!(super::name("欧阳明"), "欧阳*");
        assert_eq!(super::name("王小明"), "王**");
        assert_eq!(super::phone("13812345678"), "138****5678");
        assert_eq!(super::birth_date("1980-01-01"), "1980-01-01");
        assert_eq!(super::birth_date("1975-09-30"), "1975-01-01");
    }
}
