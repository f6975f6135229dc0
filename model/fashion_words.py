"""Garment, fabric, colour and pattern words the typo mender must never "correct".

Why: the English list the mender checks words against (pyspellchecker's) is American and
general: it lacks "pyjama", "gilet", "tankini", "skort", "elastane", and one edit from each of
them lies an English word ("filet", "tanking", "short", "elastance"). Another catalog's
shoppers use such words; read as typed they still mean something to the text model, mended
they mean something else. The list is by hand, in British and American spellings, with the
fused forms shoppers type ("tshirt", "vneck"); a word missing here and from the English list
is still mended only where a known word lies one edit away (docs/evaluation.md).
"""

from __future__ import annotations

GARMENTS = """
abaya anorak anoraks babydoll balaclava balaclavas bandeau bandeaus bardot bikini bikinis
blazer blazers blouse blouses bodice bodycon bodysuit bodysuits bolero boleros bomber bombers
boxers bra bralet bralette bralettes bras brief briefs bumbag bumbags burkini caftan caftans
cagoule cami camis camisole camisoles capri capris cardi cardigan cardigans cardis catsuit
chemise chinos churidar clutch clutches coatigan coord culotte culottes dhoti dungaree
dungarees dupatta dupattas gilet gilets gillet hijab hoodie hoodies hoody jacket jeggings
jegging jilbab jogger joggers jorts jumper jumpers jumpsuit jumpsuits kaftan kaftans kameez
kimono kimonos kurta kurtas kurti kurtis lehenga lehengas leggings legwarmers leotard
leotards loungewear mankini nightie nighties nightdress nightgown onesie onesies overshirt
overshirts palazzo palazzos parka parkas playsuit playsuits plimsoll plimsolls poncho
ponchos pullover pullovers pyjama pyjamas pajama pajamas romper rompers salwar sari saris
saree sarees sarong sarongs shacket shackets shalwar sherwani shift shirtdress shrug shrugs
singlet singlets skort skorts slingback slingbacks smock smocks snood snoods sweatpants
sweatshirt sweatshirts swimsuit swimsuits swimwear tabard tankini tankinis tee tees thong
thongs tights trackies tracksuit tracksuits trainer trainers trenchcoat tshirt tshirts
tunic tunics turtleneck turtlenecks tux tuxedo twinset unitard vest vests waistcoat
waistcoats windbreaker windcheater
"""
PARTS = """
bateau boatneck collarless cowl cowlneck crewneck crewnecks cuff cuffed cuffs drawcord
drawstring drop dropped flared flares halter halterneck henley hemline hemlines hood hooded
hoodless keyhole lapel lapels neckline necklines offshoulder peplum placket racerback raglan
rollneck scoop scoopneck sleeve sleeved sleeveless sleeves spaghetti strapless strappy
sweetheart turnup turnups underwired underwire vneck waistband wrapover yoke
"""
FABRICS = """
acrylic alpaca angora boucle broderie brocade calico cashmere chambray chenille chiffon
chino cord corduroy cotton crepe crochet damask denim elastane faille felt fleece flannel
gabardine georgette gingham hemp jacquard jersey khadi lace leatherette linen lurex
lycra lyocell marl melange merino mesh microfibre microfiber modal mohair moleskin muslin
neoprene nubuck nylon organza organic polyamide polyester poplin rayon ripstop satin sateen
seersucker sequin sequinned sequined sequins shearling sherpa silk spandex suede taffeta
tencel terry towelling tulle tweed twill velour velvet viscose voile waffle wool
"""
STYLES_AND_FINISHES = """
anarkali applique appliqued appliques athleisure bandhani bling boho chikankari crocs
crossbody earcuff earcuffs flipflops foldover lehriya overlocked pintuck pintucks sweatpant
trackpants
"""
COLOURS_AND_PATTERNS = """
animal anglaise argyle aubergine beige blush bottle burgundy camel camo camouflage cerise
chevron coral colour coloured colours colourway colourways colourblock cream ecru fairisle
floral fuchsia gingham greige grey greyish heather herringbone houndstooth ikat khaki leopard
lilac marled mauve melange mint mocha monochrome multicolour multicoloured mustard navy
oatmeal ochre ombre paisley pastel pinstripe pinstriped plaid polka print printed rust sage
stone striped stripes stripy taupe tartan teal terracotta tiedye toile zebra
"""

FASHION_WORDS = frozenset(
    (GARMENTS + PARTS + FABRICS + STYLES_AND_FINISHES + COLOURS_AND_PATTERNS).split())
