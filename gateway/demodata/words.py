"""Small word lists the demo population is drawn from.

Shipped in the package instead of calling Faker at generation time: Faker
is slow per call and its output changes between releases, while these lists
are fast to sample and keep a seed's output stable forever. Lists are kept
as whitespace- or ``|``-separated text (read by the small helpers below) so
they stay compact on the page.
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    """Items of a whitespace-separated list."""
    return text.split()


def _bar(text: str) -> list[str]:
    """Items of a ``|``-separated list, whitespace inside items collapsed."""
    return [" ".join(item.split()) for item in text.split("|") if item.strip()]


def _pairs(text: str, sep: str) -> list[tuple[str, str]]:
    """``key<sep>value`` items of a ``|``-separated list."""
    return [(key, value) for key, _, value in (item.partition(sep) for item in _bar(text))]


def _cities(text: str) -> tuple[tuple[str, str], ...]:
    """``(city, postcode prefix)`` pairs from ``City:prefix|...``."""
    return tuple(_pairs(text, ":"))


def _weighted(text: str) -> tuple[tuple[str, int], ...]:
    """``(value, weight)`` pairs from ``value:weight ...``."""
    return tuple((key, int(value)) for key, value in _pairs(text.replace(" ", "|"), ":"))


def _products(text: str) -> tuple[tuple[str, str, float], ...]:
    """``(sku, name, USD price)`` from ``sku|name|price`` lines."""
    rows = (line.split("|") for line in text.strip().splitlines())
    return tuple((sku.strip(), name, float(price)) for sku, name, price in rows)


COUNTRIES = ("US", "GB", "DE", "FR", "CA", "AU")
COUNTRY_WEIGHTS = (70, 8, 5, 5, 7, 5)

CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "CA": "CAD", "AU": "AUD"}
LANGUAGE = {"US": "en", "GB": "en", "DE": "de", "FR": "fr", "CA": "en", "AU": "en"}
TLD = {"US": "com", "GB": "co.uk", "DE": "de", "FR": "fr", "CA": "ca", "AU": "com.au"}

MALE = {
    "en": _words("""
        James John Robert Michael William David Richard Joseph Thomas Charles Christopher
        Daniel Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian
        George Timothy Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan
        Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Frank Patrick
        Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Douglas Peter Zachary
        Kyle Noah Ethan Oliver Liam Harry Wei Raj Carlos Luis Ahmed Hiroshi"""),
    "de": _words("""Lukas Leon Maximilian Felix Jonas Paul Elias Noah Ben Finn Johannes Wolfgang
        Friedrich Stefan Andreas Michael Thomas Markus Christian Jürgen Klaus Matthias
        Sebastian Tobias Florian Alexander Jan Tim Niklas Moritz"""),
    "fr": _words("""
        Jean Pierre Michel Philippe Alain Nicolas François Frédéric Laurent Julien Thomas
        Antoine Hugo Lucas Louis Gabriel Arthur Jules Mathieu Olivier Sébastien Christophe
        Guillaume Vincent Maxime Romain Benoît Théo Dominique Éric"""),
}
FEMALE = {
    "en": _words("""
        Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy
        Margaret Betty Sandra Ashley Dorothy Kimberly Emily Donna Michelle Carol Amanda
        Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley
        Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel
        Catherine Carolyn Janet Ruth Maria Heather Diane Virginia Julie Joyce Victoria
        Olivia Kelly Christina Lauren Joan Evelyn Judith Megan Andrea Cheryl Hannah
        Jacqueline Martha Gloria Teresa Sophie Chloe Isabella Priya Mei Yuki Lucia Fatima"""),
    "de": _words("""Anna Emma Mia Hannah Sophie Lena Lea Marie Laura Julia Katharina Stefanie Sabine
        Claudia Petra Andrea Monika Ursula Jana Alexandra Franziska Johanna Charlotte Greta
        Lisa Nina Sarah Vanessa Carina"""),
    "fr": _words("""
        Marie Camille Léa Manon Chloé Emma Inès Sarah Julie Laura Nathalie Isabelle Sylvie
        Catherine Françoise Sandrine Céline Aurélie Élodie Charlotte Louise Alice Juliette
        Margaux Pauline Mathilde Hélène Valérie Amélie Dominique"""),
}
NICKNAMES: dict[str, tuple[str, ...]] = {
    name: tuple(short.split("/"))
    for name, short in _pairs(
        """Robert:Bob/Rob/Bobby|William:Bill/Will/Billy|Elizabeth:Liz/Beth/Lizzie|
        Katherine:Kate/Katie/Kathy|Catherine:Cathy/Kate|James:Jim/Jimmy/Jamie|
        Michael:Mike/Mikey|Richard:Rick/Rich/Dick|Thomas:Tom/Tommy|Christopher:Chris/Topher|
        Daniel:Dan/Danny|Matthew:Matt|Anthony:Tony|Joseph:Joe/Joey|Jennifer:Jen/Jenny|
        Margaret:Maggie/Peggy/Meg|Patricia:Pat/Patty/Trish|Susan:Sue/Susie|
        Deborah:Deb/Debbie|Debra:Deb/Debbie|Rebecca:Becky/Becca|Samantha:Sam/Sammy|
        Alexander:Alex/Xander|Benjamin:Ben/Benny|Nicholas:Nick/Nicky|Jonathan:Jon/Johnny|
        Andrew:Andy/Drew|Edward:Ed/Eddie/Ted|Charles:Charlie/Chuck|Steven:Steve|
        Stephen:Steve|Victoria:Vicky/Tori|Jessica:Jess/Jessie|Christine:Chris/Tina|
        Christina:Tina/Chris|Kenneth:Ken/Kenny|Timothy:Tim/Timmy|Gregory:Greg|Samuel:Sam|
        Zachary:Zach|Joshua:Josh|Jacob:Jake|Ronald:Ron/Ronnie|Donald:Don/Donnie|
        Gerald:Jerry|Kimberly:Kim|Jacqueline:Jackie|Cynthia:Cindy|Pamela:Pam|Judith:Judy|
        Kathleen:Kathy/Kate|Stephanie:Steph|Alexandra:Alex/Sandra|Johannes:Hannes/Jo|
        Friedrich:Fritz|Wolfgang:Wolf|Stefanie:Steffi|Franziska:Franzi|
        Katharina:Kathi/Katja|Maximilian:Max|Matthias:Matze|Sebastian:Basti|Nicolas:Nico|
        Frédéric:Fred|Guillaume:Guillou|Christophe:Chris|Dominique:Dom|Mathieu:Matt|
        Isabelle:Isa|Nathalie:Nat|Margaux:Margot|Alice:Lili""",
        ":",
    )
}

LAST = {
    "en": _words("""
        Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez
        Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson
        White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright
        Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell
        Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins
        Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper
        Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez
        Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel
        Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman
        Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson
        Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant
        Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens
        Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman
        Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva
        Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd
        Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson
        Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins
        Arnold Pierce Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan
        Armstrong Hudson Carroll Lane Riley Andrews Ray Berry Perkins Hoffman Johnston
        Matthews Pena Richards Willis Carpenter Lawrence Sandoval O'Brien O'Connor MacLeod
        Singh Wang Nakamura"""),
    "de": _words("""
        Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer
        Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger
        Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze
        Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz
        Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler
        Roth Beck Lorenz"""),
    "fr": _words("""
        Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel
        Lefebvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert
        Fontaine Rousseau Vincent Muller Lefèvre Faure André Mercier Blanc Guérin Boyer
        Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin Clément Morin
        Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie
        Lemaire Noël Meunier Dufour"""),
}

STREET_NAMES = {
    "en": _words("""
        Maple Oak Pine Cedar Elm Washington Lake Hill Park Main Church High Station Victoria
        Sunset Highland Ridge Meadow Willow Spring River Forest Lincoln Jefferson Madison
        Franklin Chestnut Walnut Cherry Birch Mill Bridge Queen King Albert Green Orchard
        Valley Harbour Windsor Cambridge Oxford Jackson Grant Adams Union Market Broad Water"""),
    "de": _words("""
        Haupt Bahnhof Schiller Goethe Garten Berg Linden Kirch Mozart Wald Sonnen Ring Rosen
        Feld Birken Buchen Eichen Wiesen Schul Dorf Brunnen Mühlen Kant Beethoven Bismarck
        Friedrich Lessing"""),
    "fr": _bar("""de la Paix|Victor Hugo|de la République|Jean Jaurès|Pasteur|de la Gare|du Moulin|
        des Écoles|Nationale|de l'Église|du Château|Gambetta|Voltaire|Émile Zola|
        Jules Ferry|de la Liberté|des Lilas|du Général de Gaulle|Carnot|de Verdun|
        Saint-Michel|des Roses"""),
}
STREET_SUFFIX = {
    "US": _words("""St Ave Rd Blvd Ln Dr Way Ct Pl"""),
    "CA": _words("""Street Avenue Road Drive Crescent Boulevard Lane"""),
    "AU": _words("""Street Road Avenue Parade Drive Crescent Place"""),
    "GB": _words("""Road Street Lane Close Avenue Drive Gardens Way Crescent Terrace"""),
    "DE": _words("""straße weg allee gasse platz ring"""),
    "FR": _words("""rue avenue boulevard place allée impasse"""),
}

CITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "US": _cities(
        """New York:100|Los Angeles:900|Chicago:606|Houston:770|Phoenix:850|Philadelphia:191|
        San Antonio:782|San Diego:921|Dallas:752|Austin:787|San Jose:951|Jacksonville:322|
        Columbus:432|Charlotte:282|San Francisco:941|Indianapolis:462|Seattle:981|
        Denver:802|Boston:021|Nashville:372|Portland:972|Las Vegas:891|Detroit:482|
        Memphis:381|Louisville:402|Baltimore:212|Milwaukee:532|Albuquerque:871|Tucson:857|
        Sacramento:958|Atlanta:303|Miami:331|Minneapolis:554|Cleveland:441|Raleigh:276|
        Omaha:681|Springfield:627|Madison:537|Boise:837|Salt Lake City:841|Pittsburgh:152|
        Tampa:336"""
    ),
    "GB": _cities(
        """London:SW1|London:E14|London:N1|London:SE1|Manchester:M1|Birmingham:B15|Leeds:LS6|
        Glasgow:G12|Edinburgh:EH3|Liverpool:L8|Bristol:BS1|Sheffield:S10|Cardiff:CF10|
        Nottingham:NG7|Leicester:LE1|Oxford:OX1|Cambridge:CB2|Brighton:BN1|York:YO1|
        Newcastle upon Tyne:NE1|Belfast:BT9|Southampton:SO14|Norwich:NR2|Bath:BA1"""
    ),
    "DE": _cities(
        """Berlin:10|Hamburg:20|München:80|Köln:50|Frankfurt am Main:60|Stuttgart:70|
        Düsseldorf:40|Leipzig:04|Dortmund:44|Essen:45|Bremen:28|Dresden:01|Hannover:30|
        Nürnberg:90|Bonn:53|Mannheim:68|Karlsruhe:76|Freiburg im Breisgau:79|Heidelberg:69"""
    ),
    "FR": _cities(
        """Paris:75|Marseille:13|Lyon:69|Toulouse:31|Nice:06|Nantes:44|Strasbourg:67|
        Montpellier:34|Bordeaux:33|Lille:59|Rennes:35|Reims:51|Grenoble:38|Dijon:21|
        Angers:49|Nîmes:30|Tours:37|Brest:29|Limoges:87|Rouen:76"""
    ),
    "CA": _cities(
        """Toronto:M5V|Toronto:M4C|Montreal:H2X|Vancouver:V6B|Calgary:T2P|Edmonton:T5J|
        Ottawa:K1P|Winnipeg:R3C|Quebec City:G1R|Hamilton:L8P|Halifax:B3H|Victoria:V8W|
        Saskatoon:S7K|Regina:S4P|London:N6A|Kitchener:N2G"""
    ),
    "AU": _cities(
        """Sydney:20|Melbourne:30|Brisbane:40|Perth:60|Adelaide:50|Canberra:26|Hobart:70|
        Darwin:08|Gold Coast:42|Newcastle:23|Geelong:32|Wollongong:25|Cairns:48"""
    ),
}

PERSONAL_DOMAINS: dict[str, tuple[tuple[str, int], ...]] = {
    "US": _weighted("""
        gmail.com:40 yahoo.com:14 outlook.com:10 hotmail.com:9 icloud.com:10 aol.com:4
        comcast.net:4 googlemail.com:1"""),
    "GB": _weighted("""gmail.com:35 yahoo.co.uk:12 hotmail.co.uk:12 outlook.com:10 btinternet.com:10
        sky.com:6 icloud.com:6"""),
    "DE": _weighted(
        """gmail.com:20 gmx.de:25 web.de:25 t-online.de:14 outlook.de:8 icloud.com:4"""
    ),
    "FR": _weighted(
        """gmail.com:32 orange.fr:20 free.fr:14 laposte.net:9 hotmail.fr:12 sfr.fr:8"""
    ),
    "CA": _weighted("""gmail.com:38 hotmail.com:14 yahoo.ca:10 outlook.com:12 shaw.ca:6 rogers.com:6
        icloud.com:8"""),
    "AU": _weighted("""gmail.com:38 bigpond.com:14 outlook.com:12 yahoo.com.au:10 hotmail.com:10
        optusnet.com.au:8 icloud.com:6"""),
}
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

BRAND_HEAD = _words("""
    Zen Nova Apex Blue Bright Iron Silver Golden North South Summit Clear Swift True Prime
    Astra Vertex Quantum Terra Aqua Solar Luna Cedar Maple Oak Pine River Stone Harbor
    Pioneer Crest Beacon Falcon Eagle Orbit Pixel Vector Atlas Zephyr Cobalt Ember Sage Echo
    Lumen Kinetic Nimbus Helix Polar Vivid Bold Arc Core Next Omni Peak Red Green Lake""")
BRAND_TAIL = _words("""
    tech works ly sys ware logic labs io line point path field bridge gate stack wave forge
    craft mark hub nest spring view way base sense flow""")
SECTOR_WORD = _words("""
    Logistics Solutions Consulting Analytics Systems Partners Group Industries Labs Foods
    Health Media Software Energy Capital Design Robotics Networks Outdoor Supply Retail
    Builders Studios Security Dynamics Manufacturing Ventures Holdings Services""")
COMPANY_SUFFIX = {
    "US": _words("""Inc Inc. LLC Corp. Co."""),
    "CA": _words("""Inc. Ltd. Corp."""),
    "GB": _words("""Ltd Limited PLC LLP"""),
    "AU": _bar("""Pty Ltd|Pty. Ltd.|Limited"""),
    "DE": _bar("""GmbH|AG|GmbH & Co. KG|KG"""),
    "FR": _words("""SARL SA SAS"""),
}
INDUSTRIES = _bar("""
    Software|Retail|Manufacturing|Healthcare|Financial Services|Education|Logistics|
    Hospitality|Construction|Media|Energy|Telecommunications|Agriculture|Real Estate|
    Non-profit|Professional Services""")
SALES_REPS = _bar("""Olivia Bennett|Marcus Reid|Priya Raman|Daniel Okafor|Hannah Weiss|Lucas Moreau|
    Grace Kim|Tom Gallagher|Sofia Alvarez|Ben Carter|Aisha Khan|Jonas Lindqvist""")
SUPPORT_AGENTS = _bar("""
    Emma Hale|Noah Brandt|Chloe Dumas|Ravi Menon|Lena Vogt|Sam Ortega|Mia Foster|
    Jack Turner|Zoe Laurent|Oscar Nilsson|Ivy Chen|Leo Park|Ruby Walsh|Finn O'Neill|
    Nora Haddad|Max Keller|Ella Brooks|Theo Russo|Ada Novak|Hugo Blanc""")
AGENT_DOMAIN = "northwind-outfitters.example"

PRODUCTS = _products("""
NW-TNT-2P|Trailhead 2-Person Tent|249.00
NW-TNT-4P|Basecamp 4-Person Tent|429.00
NW-BAG-20|Ridge 20° Sleeping Bag|179.95
NW-BAG-00|Polar 0° Sleeping Bag|289.95
NW-PAD-SL|Ultralight Sleeping Pad|89.50
NW-PK-35|Summit 35L Daypack|129.00
NW-PK-65|Expedition 65L Backpack|279.00
NW-JKT-RN|Stormline Rain Jacket|159.00
NW-JKT-DN|Alpine Down Jacket|239.00
NW-FLC-MD|Midlayer Fleece|79.95
NW-BT-HK|Granite Hiking Boots|189.00
NW-SH-TR|Trail Runner Shoes|139.00
NW-SK-MW|Merino Hiking Socks (2-pack)|24.95
NW-ST-CB|Carbon Trekking Poles|119.00
NW-LMP-HD|Beam 400 Headlamp|44.95
NW-STV-CP|Compact Camp Stove|64.50
NW-CK-SET|Titanium Cook Set|99.00
NW-BTL-1L|Insulated Bottle 1L|34.95
NW-FLT-SQ|Squeeze Water Filter|39.95
NW-HAM-SG|Single Hammock|69.00
NW-CHR-LT|Folding Camp Chair|54.95
NW-GPS-HH|Handheld GPS Navigator|349.00
NW-KIT-FA|Trail First Aid Kit|29.95
NW-CAP-SN|Sun Cap|22.00
NW-GLV-WT|Winter Gloves|49.95
NW-GFT-50|Gift Card 50|50.00
NW-GFT-100|Gift Card 100|100.00
""")

TICKET_SUBJECTS = _bar("""Where is my order {order}?|Order {order} arrived damaged|
    Wrong size delivered for {product}|How do I return the {product}?|
    Refund for order {order} not received yet|Cannot log in to my account|
    Change delivery address for {order}|Question about {product} warranty|
    {product} stopped working|Missing item in order {order}|Discount code not applied|
    Invoice request for order {order}|Cancel order {order}|
    Payment failed but money was taken|Update my email address|
    Unsubscribe me from the newsletter|Bulk order enquiry|
    Exchange {product} for a different colour|Tracking link not working for {order}|
    Do you ship to my country?|Password reset email never arrives|{product} back in stock?|
    Charged twice for order {order}|Complaint about courier|Feedback on {product}""")
RATING_COMMENTS_GOOD = _bar("""
    Quick and helpful, thanks!|Solved in one reply.|Great service.|Very friendly agent.|
    Thanks for sorting this out so fast.|All good now.""")
RATING_COMMENTS_BAD = _bar("""Took far too long.|Still not solved.|Nobody read my message properly.|
    I had to repeat myself three times.|Refund still missing.|Not helpful.""")
REFUND_REASONS = _bar("""
    Damaged in transit|Wrong size|Changed my mind|Item not as described|Late delivery|
    Duplicate order|Defective product""")
OPPORTUNITY_PRODUCTS = _bar("""Team outfitting|Corporate gifts|Annual uniform contract|Event kit|
    Field equipment renewal|Retail partnership|Wholesale order|Safety gear rollout""")

TIME_ZONES = {
    "US": _words("""America/New_York America/Chicago America/Denver America/Los_Angeles"""),
    "GB": _words("""Europe/London"""),
    "DE": _words("""Europe/Berlin"""),
    "FR": _words("""Europe/Paris"""),
    "CA": _words("""America/Toronto America/Vancouver America/Edmonton America/Halifax"""),
    "AU": _words("""Australia/Sydney Australia/Melbourne Australia/Brisbane Australia/Perth"""),
}
