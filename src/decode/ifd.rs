//! A minimal reader for the first IFD of a TIFF structure: TIFF files themselves (src/decode/tif.rs)
//! and the EXIF block of JPEG/PNG/WebP files (its orientation tag).

/// The first IFD of a classic (not Big) TIFF: enough to read a few tags by hand. Entries are
/// read up to the first one cut short by the end of the data.
pub(super) struct Ifd<'a> {
    pub(super) b: &'a [u8],
    pub(super) le: bool,
    /// (tag, type, count, where the value or its offset sits)
    entries: Vec<(u16, u16, usize, usize)>,
}

impl<'a> Ifd<'a> {
    pub(super) fn parse(b: &'a [u8]) -> Option<Ifd<'a>> {
        let le = b.get(0..2)? == b"II";
        let mut ifd = Ifd {
            b,
            le,
            entries: Vec::new(),
        };
        let first = ifd.u32_at(4)? as usize;
        for i in 0..ifd.u16_at(first)? as usize {
            let e = first + 2 + i * 12;
            let (Some(tag), Some(typ), Some(count)) =
                (ifd.u16_at(e), ifd.u16_at(e + 2), ifd.u32_at(e + 4))
            else {
                break;
            };
            ifd.entries.push((tag, typ, count as usize, e + 8));
        }
        Some(ifd)
    }

    fn u16_at(&self, o: usize) -> Option<u16> {
        let s = self.b.get(o..o + 2)?;
        Some(if self.le {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        })
    }

    fn u32_at(&self, o: usize) -> Option<u32> {
        let s = self.b.get(o..o + 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }

    pub(super) fn entry(&self, tag: u16) -> Option<(u16, usize, usize)> {
        let &(_, typ, count, at) = self.entries.iter().find(|e| e.0 == tag)?;
        let size = match typ {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 => 4,
            _ => return None,
        };
        let len = count.checked_mul(size)?;
        let pos = if len <= 4 {
            at
        } else {
            self.u32_at(at)? as usize
        };
        Some((typ, count, pos))
    }

    /// An unsigned BYTE/SHORT/LONG tag's values.
    pub(super) fn values(&self, tag: u16) -> Option<Vec<u64>> {
        let (typ, count, pos) = self.entry(tag)?;
        (0..count)
            .map(|i| match typ {
                1 | 7 => self.b.get(pos + i).map(|&v| v as u64),
                3 => self.u16_at(pos + i * 2).map(u64::from),
                4 => self.u32_at(pos + i * 4).map(u64::from),
                _ => None,
            })
            .collect()
    }

    pub(super) fn value(&self, tag: u16) -> Option<u64> {
        self.values(tag)?.first().copied()
    }

    /// An UNDEFINED/BYTE tag's bytes (e.g. JPEGTables).
    pub(super) fn bytes(&self, tag: u16) -> Option<&'a [u8]> {
        let (_, count, pos) = self.entry(tag)?;
        self.b.get(pos..pos.checked_add(count)?)
    }
}
