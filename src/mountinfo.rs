//! Lines of /proc/self/mountinfo, read by doctor (which mount holds a path)
//! and the data-dir check (is any mount a filesystem that can stall).

/// One mount: the fields smartem-init uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// With mountinfo's `\040` turned back into a space.
    pub mount_point: String,
    pub options: &'a str,
    /// "?" when the line names none.
    pub fstype: &'a str,
}

/// Parses one line; None when it lacks the " - " separator or the mount
/// point and options fields.
pub fn parse_line(line: &str) -> Option<Entry<'_>> {
    let (left, right) = line.split_once(" - ")?;
    let mut fields = left.split_whitespace().skip(4);
    let mount_point = fields.next()?.replace("\\040", " ");
    let options = fields.next()?;
    Some(Entry {
        mount_point,
        options,
        fstype: right.split_whitespace().next().unwrap_or("?"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_its_mount_point_options_and_type() {
        let e = parse_line("25 22 8:1 /data /my\\040dls ro,relatime - ext4 /dev/sda1 rw")
            .expect("a valid line");
        assert_eq!(e.mount_point, "/my dls");
        assert_eq!(e.options, "ro,relatime");
        assert_eq!(e.fstype, "ext4");
        assert_eq!(parse_line("no separator here"), None);
        assert_eq!(parse_line("1 2 - ext4 x rw"), None);
    }
}
