//! Generates the support-triage example dataset: short customer support messages labelled
//! with a severity and a category, as chat examples whose assistant turn is one line of JSON.
//!
//! ```text
//! cargo run -p graft-train --example gen-support-triage -- \
//!     --out examples/support-triage/data --n 1200 --seed 0
//! ```
//!
//! Deterministic: the output depends only on `--n` and `--seed` (SplitMix64, no platform
//! randomness). The pooled examples are split 80/10/10 with graft-train's `split_file`
//! (split seed 0) into `train.jsonl`, `val.jsonl` and `test.jsonl` in `--out`.

use std::collections::BTreeSet;
use std::path::Path;

use graft_train::data::rng::SplitMix64;
use graft_train::data::{jaccard, shingles, SplitRatios, SplitReport};

#[path = "gen_support/mod.rs"]
mod gen_support;

/// The system prompt of every example.
pub const SYSTEM: &str = "Classify the support message. Reply with one line of JSON: \
{\"severity\":\"low|medium|high|critical\",\"category\":\"billing|account|bug|shipping|feature|privacy\"}";

/// The allowed severities, least to most severe.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// The allowed categories.
pub const CATEGORIES: [&str; 6] = [
    "billing", "account", "bug", "shipping", "feature", "privacy",
];

/// A generated message is rejected when the Jaccard similarity of its word 5-shingles
/// (graft-train's [`shingles`]) to any earlier message reaches this, so that no two
/// examples (hence no test and train example) are near duplicates.
pub const MAX_SIMILARITY: f64 = 0.6;

/// The seed of the train/val/test split.
pub const SPLIT_SEED: u64 = 0;

/// One (category, severity) cell and its core-sentence templates.
///
/// Template syntax: `[a|b|c]` picks one alternative (may be empty), `{slot}` a filler.
struct Cell {
    category: &'static str,
    severity: &'static str,
    templates: &'static [&'static str],
}

const CELLS: &[Cell] = &[
    // ---- billing ----
    Cell {
        category: "billing",
        severity: "low",
        templates: &[
            "[Can|Could] you [tell me|explain] when I'll be billed for the {plan}?",
            "Is there a discount if I pay yearly for the {plan}?",
            "Where can I download [a PDF of my invoices|my old receipts|last year's invoices]?",
            "Do you accept [PayPal|bank transfer|Apple Pay] for the {plan}?",
            "Can I change the billing email on my account to {email}?",
            "How do I add our VAT number to future invoices?",
            "Just wondering [whether prices include tax|if you offer student pricing|if there is a nonprofit discount].",
            "What happens to my bill if I [add two seats|remove a seat|downgrade] in the middle of the month?",
            "[Quick question|Question]: does the {plan} renew automatically?",
        ],
    },
    Cell {
        category: "billing",
        severity: "medium",
        templates: &[
            "The invoice for {month} shows the wrong company address.",
            "My receipt email took [two days|ages|over a day] to arrive after I paid.",
            "The billing page [loads really slowly|takes forever to load], but I [eventually got to|could still see] my invoices.",
            "The invoice PDF is missing our VAT number, [can you reissue it|could you regenerate it]?",
            "The currency on my {month} invoice shows USD even though I pay in [EUR|GBP].",
            "Updating my card [only works on the second try|fails the first time and then works].",
            "The usage chart on the billing page doesn't match the number of seats we [have|pay for].",
            "The [discount code|coupon] was applied to my {month} invoice [a week late|only after I asked].",
        ],
    },
    Cell {
        category: "billing",
        severity: "high",
        templates: &[
            "I was charged twice for the {plan} [this month|on {date}], {amount} each time.",
            "You charged me {amount} after I cancelled my subscription [last month|weeks ago].",
            "My refund of {amount} [still hasn't arrived|never showed up] [after three weeks|after 20 days|and it's been a month].",
            "My card keeps getting declined, so I [can't|cannot] renew and my account is now [locked|suspended].",
            "I was moved to the {plan} without asking and charged {amount}.",
            "The checkout [won't let me|refuses to let me] pay, so I can't [reactivate|renew] my account.",
            "I paid {amount} on {date} but my account still says [unpaid|payment overdue] and [everything is locked|I can't use it].",
        ],
    },
    Cell {
        category: "billing",
        severity: "critical",
        templates: &[
            "None of our customers can pay at checkout[ right now|], every card is [rejected|declined].",
            "Payments are failing for [all|every one] of our {n} [users|customers] {recent}.",
            "Your payment system [is down|appears to be down] and [no one|nobody] on our store can complete a purchase.",
            "Every subscription renewal [failed|bounced] overnight and [all|thousands] of our customers [got|received] cancellation emails.",
            "We're seeing [hundreds of|mass] duplicate charges across all our customers after [today's|the latest] billing run.",
            "[Card payments|All payments] [stopped working|broke] for our entire shop {recent}, zero orders are going through.",
        ],
    },
    // ---- account ----
    Cell {
        category: "account",
        severity: "low",
        templates: &[
            "How do I change my [username|display name|profile picture]?",
            "Can I [merge|combine] my two accounts into one?",
            "Is it possible to [use|log in with] my Google account instead of a password?",
            "What are the password requirements [for|on] {product}?",
            "How can I add a [colleague|teammate|new hire] to our workspace?",
            "Where do I turn on two-factor authentication?",
            "Can I [rename|change the name of] our workspace without losing anything?",
            "Is there a way to [see|check] when I last logged in?",
        ],
    },
    Cell {
        category: "account",
        severity: "medium",
        templates: &[
            "The 2FA code [sometimes takes|often takes] [a few minutes|ages] to arrive by SMS, [but|though] I get in eventually.",
            "I keep getting logged out of {product} [every hour|several times a day].",
            "The password reset email [lands in spam|takes ten minutes to show up], [but|though] it works.",
            "My profile picture won't update, it still shows the old one.",
            "Logging in on {browser} needs two attempts [every time|most of the time], the first one just reloads the page.",
            "The [remember me|stay signed in] box doesn't seem to work on {device}, I have to log in again each morning.",
        ],
    },
    Cell {
        category: "account",
        severity: "high",
        templates: &[
            "I'm locked out of my account and the password reset link [says it's expired|never arrives].",
            "I [can't|cannot] log in [at all|anymore] since {day}, it says my account is disabled.",
            "My 2FA phone [was stolen|broke] and now I have no way to get into my account.",
            "After changing my email I can't sign in [with either address|anymore], I'm completely stuck.",
            "My account was [suspended|deactivated] by mistake and I can't access any of my work.",
            "Every login attempt on {product} says 'invalid password' even right after a reset, so I can't get in.",
        ],
    },
    Cell {
        category: "account",
        severity: "critical",
        templates: &[
            "Someone [took over|hijacked] our admin account and [changed|reset] every user's password.",
            "Nobody in our company can log in, the login page [returns an error|shows a 500 error] for all {n} of us.",
            "Single sign-on is down for [everyone|the whole organisation], none of our {n} users can [get in|sign in].",
            "Login is [completely down|broken] for [all|every one] of our users {recent}.",
            "An attacker [got into|broke into] our owner account and [removed|kicked out] all the other admins.",
        ],
    },
    // ---- bug ----
    Cell {
        category: "bug",
        severity: "low",
        templates: &[
            "There's a typo on the {page}: '[recieve|adress|seperate|occured]' is spelled wrong.",
            "The icon on the {page} is slightly [misaligned|blurry] on {device}.",
            "In dark mode the [footer|tooltip] text on the {page} is a bit hard to read.",
            "The date on the {page} shows in US format, [is there a setting for that|small thing]?",
            "[Small|Minor] thing: the button label on the {page} is cut off on {device}.",
            "The [spinner|loading animation] on the {page} keeps spinning for a second after the page has loaded.",
        ],
    },
    Cell {
        category: "bug",
        severity: "medium",
        templates: &[
            "{product} [is really slow|takes about 30 seconds to load] since {day}, but it does work.",
            "{product} crashes [now and then|every few hours] when I open the {page}, restarting fixes it.",
            "Search results on the {page} are sometimes [empty|out of date] until I refresh.",
            "Uploads over 10 MB fail [about half the time|occasionally], smaller files are fine.",
            "Notifications arrive [late|hours late] on {device}.",
            "Exports [sometimes|occasionally] come out with the columns in the wrong order.",
            "The {page} freezes for a few seconds [whenever|each time] I scroll on {device}, then it recovers.",
        ],
    },
    Cell {
        category: "bug",
        severity: "high",
        templates: &[
            "{product} crashes [every time|immediately when] I open it on {device}, I can't use it at all.",
            "I [can't|cannot] save anything, every time I click save I get an error.",
            "The {page} is [blank|completely white] on {browser} and I can't get my work done.",
            "After the update {product} won't start on my {device} at all.",
            "I get 'Error 500' whenever I try to open the {page}, so I'm stuck.",
            "The upload button on the {page} does nothing, so I [can't|cannot] submit my report before the deadline.",
        ],
    },
    Cell {
        category: "bug",
        severity: "critical",
        templates: &[
            "{product} is down for everyone at our company, [nobody|no one] can [open it|load anything].",
            "All our project data [disappeared|is gone] after [the update|last night's sync], [thousands of|hundreds of] records are missing.",
            "Your whole service [is returning|returns] errors for all {n} of our users {recent}.",
            "The last update [wiped|deleted] every user's saved files.",
            "The API is down [globally|for every client], all requests time out.",
            "[Your servers are|The platform is] unreachable {recent}, our entire team of {n} is offline.",
        ],
    },
    // ---- shipping ----
    Cell {
        category: "shipping",
        severity: "low",
        templates: &[
            "Which carriers do you ship with to {country}?",
            "How long does shipping to {country} usually take?",
            "Can I change the delivery address on order {order} before it ships?",
            "Do you offer gift wrapping [for|on] orders?",
            "Is express delivery available for the {item}?",
            "Do you ship to [PO boxes|pickup points] in {country}?",
        ],
    },
    Cell {
        category: "shipping",
        severity: "medium",
        templates: &[
            "My order {order} is [a few days|three days] late according to the estimate, the tracking still moves though.",
            "The tracking page for {order} hasn't updated [since {day}|in two days].",
            "{carrier} left my package [with a neighbour|at the front desk] instead of at my door, I got it eventually.",
            "The box for order {order} arrived [dented|damaged] but the {item} inside [works|seems fine].",
            "Delivery of {order} was [rescheduled twice|pushed back a day].",
            "Order {order} came in two separate boxes and the second one is [a week|days] behind.",
        ],
    },
    Cell {
        category: "shipping",
        severity: "high",
        templates: &[
            "My order {order} [never arrived|was never delivered] even though {carrier} marked it delivered.",
            "I received the wrong item instead of the {item}, and I paid {amount} for it.",
            "Package {order} was lost in transit and I [paid|was charged] {amount} for it.",
            "The {item} arrived [broken|smashed] and doesn't work at all.",
            "{carrier} returned order {order} to you [by mistake|for no reason] and I still have nothing after paying {amount}.",
        ],
    },
    Cell {
        category: "shipping",
        severity: "critical",
        templates: &[
            "None of our orders have shipped [in a week|since {day}], [hundreds of|all our] customers are waiting.",
            "Your shipping integration is down and [no orders|not a single order] can be [fulfilled|dispatched] for any of our customers.",
            "Every label printed {recent} has the wrong address, [all|every one] of our shipments are going to the wrong place.",
            "Tracking is broken for all orders and [our entire customer base|every customer] is [asking|calling us] where their packages are.",
            "[The warehouse|Your fulfilment centre] has stopped sending out anything {recent}, all {n} of our pending orders are stuck.",
        ],
    },
    // ---- feature ----
    Cell {
        category: "feature",
        severity: "low",
        templates: &[
            "It would be [nice|great] to have {feature} in {product}.",
            "[Any plans|Are there plans] to add {feature}?",
            "[Suggestion|Idea]: add {feature} to the {page}.",
            "Could you [consider adding|add] {feature} [some day|in a future release]?",
            "I'd love {feature}, [no rush|just a thought].",
            "Have you thought about {feature}? [I'd use it a lot|It would be handy].",
        ],
    },
    Cell {
        category: "feature",
        severity: "medium",
        templates: &[
            "Not having {feature} [slows our team down|costs us time] every [day|week], we use a workaround for now.",
            "Without {feature} we have to [do it by hand|copy things over manually], please [prioritise|bump] it.",
            "{feature} would save our team hours a week, the current workaround is painful.",
            "We keep [hitting|running into] the lack of {feature} on the {page}, it makes [reporting|planning] tedious.",
        ],
    },
    Cell {
        category: "feature",
        severity: "high",
        templates: &[
            "We can't [roll out|launch] {product} to our team until it supports {feature}, this blocks our [rollout|migration].",
            "Our [security team|IT department] won't approve {product} without {feature}, so we're blocked.",
            "[We were promised|Sales promised us] {feature} [by this month|at signup] and our [launch|go-live] is blocked without it.",
            "Our contract requires {feature} and we [cannot|can't] move our {n} users over until it exists.",
        ],
    },
    // ---- privacy ----
    Cell {
        category: "privacy",
        severity: "low",
        templates: &[
            "Where can I read [your privacy policy|how you use my data]?",
            "Do you store data in [the EU|Europe|the US]?",
            "[Which|What] third parties do you share my [email|data] with?",
            "How long do you keep [deleted files|chat logs|my data] after I delete them?",
            "Are you GDPR compliant?",
            "Can I [get a copy of|download] the data you hold about me?",
        ],
    },
    Cell {
        category: "privacy",
        severity: "medium",
        templates: &[
            "I [opted out of|unsubscribed from] marketing emails but still get [one a week|them now and then].",
            "My data export request from {day} [is still pending|hasn't finished yet].",
            "The cookie banner [keeps coming back|doesn't remember my choice] on {browser}.",
            "The privacy setting to hide my profile [resets itself|turns back on] after [a few days|each update].",
            "The download of my personal data [is missing|leaves out] my [order history|messages].",
        ],
    },
    Cell {
        category: "privacy",
        severity: "high",
        templates: &[
            "I asked you to delete my account and data [a month ago|weeks ago] and it's still there.",
            "I can see another customer's [name and address|order history] in my account.",
            "My [personal phone number|home address] is [visible|shown] on my public profile even though I [set it to private|hid it].",
            "You [sent|emailed] my [invoice|signed contract] to someone else's email address.",
        ],
    },
    Cell {
        category: "privacy",
        severity: "critical",
        templates: &[
            "[We think|It looks like] your database was breached, our customers' [passwords|emails and addresses] are [for sale|posted] online.",
            "Every user can [see|browse] every other user's private files [right now|since the update].",
            "[A|Your] public link [exposes|leaks] all of our customer records to anyone on the internet.",
            "We received [a ransom note|an extortion email] with a dump of all our user data from your platform.",
            "[All|Every one] of our {n} employees' personal details [showed up|were visible] in another company's workspace {recent}.",
        ],
    },
];

/// Sentences consistent with each severity, added after the core sentence.
const CONTEXT: [&[&str]; 4] = [
    &[
        "No rush.",
        "Just curious.",
        "Not urgent.",
        "Whenever you have time.",
        "Thanks in advance!",
        "Not a big deal.",
        "Just asking before I decide.",
    ],
    &[
        "It's annoying but I can still work.",
        "Not blocking me, just slowing things down.",
        "There's a workaround so it's not urgent.",
        "It happens on and off.",
        "Would be good to get it looked at this week.",
        "Not the end of the world, but please look into it.",
    ],
    &[
        "Please help asap.",
        "I need this sorted today.",
        "This is really frustrating.",
        "Please fix this quickly.",
        "I've already waited too long.",
        "I need a reply today please.",
    ],
    &[
        "This is affecting all of our users.",
        "We are losing money every minute.",
        "Please escalate this immediately.",
        "Our whole business is down.",
        "This is an emergency.",
        "We need your on-call engineer now.",
    ],
];

const GREETINGS: &[&str] = &[
    "Hi,",
    "Hello,",
    "Hey team,",
    "Hi there,",
    "Good morning,",
    "Dear support,",
    "Hello support team,",
    "hey",
    "Hi {name},",
];

const CLOSINGS: &[&str] = &[
    "Thanks, {name}.",
    "Thanks!",
    "Regards, {name}",
    "- {name}",
    "Cheers, {name}",
    "Thank you.",
    "My account is {email}.",
    "Sent from my {device}",
];

const NAMES: &[&str] = &[
    "Maria", "John", "Priya", "Wei", "Ahmed", "Sofia", "Luca", "Emma", "Kenji", "Olu", "Fatima",
    "Tom", "Ana", "Jonas", "Chloe", "Diego", "Nadia", "Raj", "Hannah", "Pedro", "Ines", "Sam",
    "Yuki", "Omar",
];
const PRODUCTS: &[&str] = &[
    "the mobile app",
    "the iOS app",
    "the Android app",
    "the web dashboard",
    "the desktop client",
    "the browser extension",
    "the admin console",
    "the Mac app",
];
const PLANS: &[&str] = &[
    "Pro plan",
    "Team plan",
    "Basic plan",
    "Business plan",
    "Starter plan",
    "Premium plan",
];
const DEVICES: &[&str] = &[
    "iPhone 13",
    "Pixel 7",
    "Galaxy S22",
    "MacBook",
    "Windows 11 laptop",
    "iPad",
    "Chromebook",
    "work PC",
];
const BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari", "Edge", "Brave"];
const DAYS: &[&str] = &[
    "yesterday",
    "Monday",
    "last week",
    "the weekend",
    "the last update",
    "Tuesday",
    "two days ago",
];
const RECENT: &[&str] = &[
    "since this morning",
    "for the last hour",
    "right now",
    "since 9am",
    "since the last deploy",
    "for about 40 minutes",
];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const FEATURES: &[&str] = &[
    "dark mode",
    "CSV export",
    "bulk editing",
    "keyboard shortcuts",
    "a Slack integration",
    "recurring tasks",
    "calendar sync",
    "custom fields",
    "an offline mode",
    "SSO with Okta",
    "audit logs",
    "a public API",
    "role-based permissions",
];
const PAGES: &[&str] = &[
    "settings page",
    "checkout page",
    "reports tab",
    "search page",
    "dashboard",
    "profile screen",
    "upload screen",
    "calendar view",
];
const CARRIERS: &[&str] = &["UPS", "FedEx", "DHL", "USPS", "the courier", "Royal Mail"];
const ITEMS: &[&str] = &[
    "headphones",
    "replacement charger",
    "starter kit",
    "keyboard",
    "desk lamp",
    "webcam",
    "phone case",
    "standing mat",
];
const COUNTRIES: &[&str] = &[
    "Canada",
    "Germany",
    "Japan",
    "Brazil",
    "Australia",
    "India",
    "Norway",
    "Mexico",
];
const DOMAINS: &[&str] = &["example.com", "mail.example", "example.org", "corp.example"];

/// The generator's random choices.
struct Gen {
    rng: SplitMix64,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }

    /// True with probability `p_percent`/100.
    fn chance(&mut self, p_percent: usize) -> bool {
        self.below(100) < p_percent
    }

    fn slot(&mut self, name: &str) -> String {
        match name {
            "name" => self.pick(NAMES).to_string(),
            "product" => self.pick(PRODUCTS).to_string(),
            "plan" => self.pick(PLANS).to_string(),
            "device" => self.pick(DEVICES).to_string(),
            "browser" => self.pick(BROWSERS).to_string(),
            "day" => self.pick(DAYS).to_string(),
            "recent" => self.pick(RECENT).to_string(),
            "month" => self.pick(MONTHS).to_string(),
            "feature" => self.pick(FEATURES).to_string(),
            "page" => self.pick(PAGES).to_string(),
            "carrier" => self.pick(CARRIERS).to_string(),
            "item" => self.pick(ITEMS).to_string(),
            "country" => self.pick(COUNTRIES).to_string(),
            "n" => (5 + self.below(496)).to_string(),
            "order" => format!("#{}", 10_000 + self.below(990_000)),
            "date" => format!("{} {}", self.pick(MONTHS), 1 + self.below(28)),
            "amount" => {
                let cur = self.pick(&["$", "€", "£"]);
                let whole = 5 + self.below(295);
                if self.chance(50) {
                    format!("{cur}{whole}")
                } else {
                    format!("{cur}{whole}.{:02}", self.below(100))
                }
            }
            "email" => {
                let name = self.pick(NAMES).to_lowercase();
                let num = if self.chance(40) {
                    (self.below(99) + 1).to_string()
                } else {
                    String::new()
                };
                format!("{name}{num}@{}", self.pick(DOMAINS))
            }
            // Templates are constants of this file: an unknown slot is a bug here.
            other => panic!("unknown template slot {{{other}}}"),
        }
    }

    /// Expands `[a|b]` alternatives and `{slot}` fillers.
    fn expand(&mut self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['[', '{']) {
            out.push_str(&rest[..i]);
            let close = if rest.as_bytes()[i] == b'[' { ']' } else { '}' };
            let end = match rest[i..].find(close) {
                Some(e) => i + e,
                None => panic!("unclosed {close} in template {template:?}"),
            };
            let inner = &rest[i + 1..end];
            if close == ']' {
                let alts: Vec<&str> = inner.split('|').collect();
                let alt = alts[self.below(alts.len())];
                out.push_str(&self.expand(alt));
            } else {
                out.push_str(&self.slot(inner));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Introduces a typo into one word of at least 5 ASCII letters: swap, drop or double.
    fn typo(&mut self, text: &str) -> String {
        let words: Vec<&str> = text.split(' ').collect();
        let eligible: Vec<usize> = (0..words.len())
            .filter(|&i| words[i].len() >= 5 && words[i].bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        if eligible.is_empty() {
            return text.to_string();
        }
        let wi = eligible[self.below(eligible.len())];
        let mut w: Vec<u8> = words[wi].bytes().collect();
        let p = 1 + self.below(w.len() - 2);
        match self.below(3) {
            0 => w.swap(p, p + 1),
            1 => {
                w.remove(p);
            }
            _ => w.insert(p, w[p]),
        }
        let new_word = String::from_utf8_lossy(&w).into_owned();
        let mut out: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        out[wi] = new_word;
        out.join(" ")
    }

    /// One user message for a cell.
    fn message(&mut self, cell: &Cell, severity_index: usize) -> String {
        let template = self.pick_template(cell);
        let mut core = self.expand(template);
        capitalize_first(&mut core);
        if (cell.severity == "high" || cell.severity == "critical") && self.chance(12) {
            core = format!("{} {core}", self.pick(&["URGENT:", "Urgent -", "HELP:"]));
        }
        let mut parts: Vec<String> = Vec::new();
        if self.chance(45) {
            let g = self.pick(GREETINGS);
            parts.push(self.expand(g));
        }
        parts.push(core);
        if self.chance(50) {
            let c = self.pick(CONTEXT[severity_index]);
            parts.push(c.to_string());
        }
        if self.chance(35) {
            let c = self.pick(CLOSINGS);
            parts.push(self.expand(c));
        }
        let mut text = parts.join(" ");
        // Tone and sloppiness.
        if self.chance(15) {
            text = text.to_lowercase().replace("please", "pls");
        }
        if self.chance(12) {
            if let Some(stripped) = text.strip_suffix('.') {
                text = stripped.to_string();
            }
        }
        if (cell.severity == "high" || cell.severity == "critical") && self.chance(15) {
            text = format!("{}!!", text.trim_end_matches(['.', '!']));
        }
        if self.chance(20) {
            text = self.typo(&text);
            if self.chance(20) {
                text = self.typo(&text);
            }
        }
        text
    }

    fn pick_template(&mut self, cell: &Cell) -> &'static str {
        cell.templates[self.below(cell.templates.len())]
    }
}

fn capitalize_first(s: &mut String) {
    if let Some(c) = s.chars().next() {
        let up: String = c.to_uppercase().collect();
        s.replace_range(..c.len_utf8(), &up);
    }
}

/// The assistant's reply: one line of JSON, severity then category, no spaces.
pub fn label_json(severity: &str, category: &str) -> String {
    format!("{{\"severity\":\"{severity}\",\"category\":\"{category}\"}}")
}

/// One JSONL line in the `messages` shape.
fn jsonl_line(user: &str, severity: &str, category: &str) -> String {
    let turn = |role: &str, content: &str| {
        format!(
            "{{\"role\":\"{role}\",\"content\":{}}}",
            serde_json::Value::String(content.to_string())
        )
    };
    format!(
        "{{\"messages\":[{},{},{}]}}",
        turn("system", SYSTEM),
        turn("user", user),
        turn("assistant", &label_json(severity, category))
    )
}

/// The `n` examples for `seed`, as JSONL lines (without newlines) in a shuffled order.
/// Cells are used round-robin so every (category, severity) cell gets about `n / cells`
/// examples; user messages are unique after lower-casing and collapsing whitespace, and no
/// two are [`MAX_SIMILARITY`] similar or more.
pub fn generate(n: usize, seed: u64) -> Vec<String> {
    let mut g = Gen {
        rng: SplitMix64::new(seed ^ 0x7375_7070_6f72_7421),
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut sets: Vec<Vec<u64>> = Vec::new();
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let cell = &CELLS[i % CELLS.len()];
        let sev = SEVERITIES
            .iter()
            .position(|s| *s == cell.severity)
            .unwrap_or(0);
        let mut attempts = 0;
        let user = loop {
            let m = g.message(cell, sev);
            let key = m
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let set = shingles(&m);
            if !seen.contains(&key) && sets.iter().all(|s| jaccard(s, &set) < MAX_SIMILARITY) {
                seen.insert(key);
                sets.push(set);
                break m;
            }
            attempts += 1;
            assert!(
                attempts < 1000,
                "cannot make a new message for {}/{}",
                cell.category,
                cell.severity
            );
        };
        lines.push(jsonl_line(&user, cell.severity, cell.category));
    }
    for i in (1..lines.len()).rev() {
        let j = g.below(i + 1);
        lines.swap(i, j);
    }
    lines
}

/// Generates `n` examples with `seed` and writes the 80/10/10 split into `out`. Fails when
/// graft-train's loader would drop or deduplicate any generated example.
pub fn write_dataset(out: &Path, n: usize, seed: u64) -> Result<SplitReport, String> {
    gen_support::write_split(
        out,
        &generate(n, seed),
        SplitRatios::new(0.8, 0.1, 0.1).map_err(|e| e.to_string())?,
        SPLIT_SEED,
    )
}

fn main() -> std::process::ExitCode {
    gen_support::run("gen-support-triage", 1200, 1, write_dataset)
}
