//! `edgeauth profiles ...`: people's profiles, through a running gateway's
//! admin API (`/.edgeauth/admin/profiles`, see edgeauth_core::profile_admin).

use std::io::Write as _;

use anyhow::{Context as _, Result, bail};
use edgeauth_core::profile_admin;
use edgeauth_rules::event::HttpResponse;
use serde_json::Value;

use crate::admin_cli::{self, Args};

pub const USAGE: &str = "\
edgeauth profiles: people's profiles (README, \"Profile admin API\")

USAGE:
    edgeauth profiles get    TENANT PROFILE_ID
    edgeauth profiles find   TENANT --email ADDRESS
    edgeauth profiles find   TENANT --connection ID --subject SUBJECT
    edgeauth profiles patch  TENANT PROFILE_ID PATCH.json   (`-`: standard input)
    edgeauth profiles unlink TENANT PROFILE_ID CONNECTION SUBJECT
    edgeauth profiles delete TENANT PROFILE_ID              (erasure)
    edgeauth profiles merge  TENANT TARGET_ID SOURCE_ID     (SOURCE merged into TARGET, then gone)
    edgeauth profiles sessions TENANT PROFILE_ID            (the person's active sessions)
    edgeauth profiles logout TENANT PROFILE_ID [SESSION_ID] (that session ends; without one, every session)
    edgeauth profiles export TENANT [--limit N]             (JSON lines, every page)
    edgeauth profiles import TENANT FILE.jsonl              (export's format; `-`: standard input)

Every command takes --gateway URL (or EDGEAUTH_GATEWAY); the token is read
from EDGEAUTH_ADMIN_TOKEN: the gateway's admin_token, or one of the tenant's
own tokens (admin_token_sha256 in its document). A patch is
{\"user_metadata\": {...}, \"app_metadata\": {...}}, each a JSON merge patch
(null removes a key).
";

/// Percent-encodes everything but RFC 3986's unreserved characters (path
/// segments and query values: subjects may hold `/`, `|`, `@`, `+`).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn main(args: &[String]) -> Result<()> {
    let Some(cmd) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "get" => {
            let a = parse_args(rest, &[])?;
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            print_json(&call(
                &a.gateway()?,
                "GET",
                &format!("/{}/{}", enc(t), enc(id)),
                None,
            )?)
        }
        "find" => {
            let a = parse_args(rest, &["--email", "--connection", "--subject"])?;
            let [t] = a.exactly("TENANT")?;
            let query = match (
                a.value("--email"),
                a.value("--connection"),
                a.value("--subject"),
            ) {
                (Some(e), None, None) => format!("email={}", enc(e)),
                (None, Some(c), Some(s)) => format!("connection={}&subject={}", enc(c), enc(s)),
                _ => bail!("find by --email, or by --connection and --subject\n\n{USAGE}"),
            };
            print_json(&call(
                &a.gateway()?,
                "GET",
                &format!("/{}?{query}", enc(t)),
                None,
            )?)
        }
        "patch" => {
            let a = parse_args(rest, &[])?;
            let [t, id, file] = a.exactly("TENANT PROFILE_ID PATCH.json")?;
            let body = if file == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(file).with_context(|| format!("cannot read {file}"))?
            };
            let path = format!("/{}/{}", enc(t), enc(id));
            print_json(&call(&a.gateway()?, "PATCH", &path, Some(body))?)
        }
        "unlink" => {
            let a = parse_args(rest, &[])?;
            let [t, id, c, s] = a.exactly("TENANT PROFILE_ID CONNECTION SUBJECT")?;
            let path = format!("/{}/{}/identities/{}/{}", enc(t), enc(id), enc(c), enc(s));
            call(&a.gateway()?, "DELETE", &path, None)?;
            println!("identity `{c}`/`{s}` unlinked from profile `{id}`");
            Ok(())
        }
        "delete" => {
            let a = parse_args(rest, &[])?;
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            call(
                &a.gateway()?,
                "DELETE",
                &format!("/{}/{}", enc(t), enc(id)),
                None,
            )?;
            println!("profile `{id}` erased from tenant `{t}`");
            Ok(())
        }
        "sessions" => {
            let a = parse_args(rest, &[])?;
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            let path = format!("/{}/{}/sessions", enc(t), enc(id));
            print_json(&call(&a.gateway()?, "GET", &path, None)?)
        }
        "logout" => {
            let a = parse_args(rest, &[])?;
            if a.positional.len() == 3 {
                let [t, id, session] = a.exactly("TENANT PROFILE_ID SESSION_ID")?;
                let path = format!("/{}/{}/sessions/{}", enc(t), enc(id), enc(session));
                call(&a.gateway()?, "DELETE", &path, None)?;
                println!("session `{session}` of profile `{id}` is revoked");
                return Ok(());
            }
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            let path = format!("/{}/{}/sessions", enc(t), enc(id));
            call(&a.gateway()?, "DELETE", &path, None)?;
            println!("every session of profile `{id}` in tenant `{t}` is revoked");
            Ok(())
        }
        "merge" => {
            let a = parse_args(rest, &[])?;
            let [t, target, source] = a.exactly("TENANT TARGET_ID SOURCE_ID")?;
            let body = serde_json::to_vec(&serde_json::json!({ "from": source }))?;
            let path = format!("/{}/{}/merge", enc(t), enc(target));
            print_json(&call(&a.gateway()?, "POST", &path, Some(body))?)
        }
        "import" => {
            let a = parse_args(rest, &[])?;
            let [t, file] = a.exactly("TENANT FILE.jsonl")?;
            let input: Box<dyn std::io::Read> = if file == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?)
            };
            import(&a.gateway()?, t, std::io::BufReader::new(input))
        }
        "export" => {
            let a = parse_args(rest, &["--limit"])?;
            let [t] = a.exactly("TENANT")?;
            let limit = a.value("--limit").unwrap_or("50");
            let gateway = a.gateway()?;
            let mut cursor = String::from("1");
            let mut out = std::io::stdout().lock();
            // One page in memory at a time, written out before the next.
            loop {
                let path = format!("/{}?cursor={cursor}&limit={}", enc(t), enc(limit));
                let resp = call(&gateway, "GET", &path, None)?;
                out.write_all(&resp.body)?;
                match header(&resp, "edgeauth-next-cursor") {
                    Some(next) => cursor = enc(next),
                    None => break,
                }
            }
            out.flush()?;
            Ok(())
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown profiles command {other:?}\n\n{USAGE}"),
    }
}

/// Sends the lines of `input` in bodies under the gateway's import cap
/// (`profile_admin::MAX_IMPORT_BODY`) and of at most `IMPORT_CHUNK_LINES`
/// lines (the per-line report must fit a 64 KiB response), one chunk in
/// memory at a time, and
/// reports every skipped line by its number in the file.
fn import(gateway: &str, tenant: &str, mut input: impl std::io::BufRead) -> Result<()> {
    let path = format!("/{}/import", enc(tenant));
    let cap = profile_admin::MAX_IMPORT_BODY;
    let (mut imported, mut skipped) = (0u64, 0u64);
    let mut send = |chunk: &mut Vec<u8>, lines: &mut Vec<usize>| -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let resp = call(gateway, "POST", &path, Some(std::mem::take(chunk)))?;
        let report: Value =
            serde_json::from_slice(&resp.body).context("the gateway answered non-JSON")?;
        imported += report["imported"].as_u64().unwrap_or(0);
        skipped += report["skipped"].as_u64().unwrap_or(0);
        for r in report["results"].as_array().into_iter().flatten() {
            if r["result"] == "skipped" {
                // The gateway numbers the lines of the chunk it got.
                let n = r["line"].as_u64().unwrap_or(0) as usize;
                let at = n
                    .checked_sub(1)
                    .and_then(|i| lines.get(i))
                    .copied()
                    .unwrap_or(0);
                println!(
                    "line {at}: skipped: {}",
                    r["reason"].as_str().unwrap_or("?")
                );
            }
        }
        lines.clear();
        Ok(())
    };
    let (mut chunk, mut lines, mut line) = (Vec::new(), Vec::new(), Vec::new());
    let mut number = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if text.len() + 1 > cap {
            bail!("line {number} is longer than the gateway takes in one request ({cap} bytes)");
        }
        if chunk.len() + text.len() + 1 > cap || lines.len() == profile_admin::IMPORT_CHUNK_LINES {
            send(&mut chunk, &mut lines)?;
        }
        chunk.extend_from_slice(text);
        chunk.push(b'\n');
        lines.push(number);
    }
    send(&mut chunk, &mut lines)?;
    println!("imported {imported}, skipped {skipped}");
    if skipped > 0 {
        bail!("{skipped} profiles were not imported (see the lines above)");
    }
    Ok(())
}

fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn print_json(resp: &HttpResponse) -> Result<()> {
    let v: Value = serde_json::from_slice(&resp.body).context("the gateway answered non-JSON")?;
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(())
}

fn parse_args(rest: &[String], flags: &[&str]) -> Result<Args> {
    let mut allowed = vec!["--gateway"];
    allowed.extend_from_slice(flags);
    Args::parse(rest, &allowed, USAGE)
}

fn call(gateway: &str, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<HttpResponse> {
    admin_cli::call(gateway, profile_admin::PREFIX, method, path, body)
}
