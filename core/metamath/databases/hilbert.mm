$( hilbert.mm: Hilbert-style classical propositional calculus.

   advprover's embedded Metamath database.  It uses set.mm's notation and
   labels (wff, |-, ph ps ch ..., wn, wi, ax-1, ax-2, ax-3, ax-mp, df-bi,
   df-or, df-an) so that what a model learns here carries over to set.mm.
   Theorems follow set.mm's order of development: each proof uses only the
   axioms and the theorems before it.  Every proof was constructed with
   advprover's own tools (backward proof environment, proof trees,
   compressed-proof writer) and is checked by advprover's kernel and by the
   reference verifier metamath.

   It is the default database whenever no other database is given: small
   enough to read in milliseconds, large enough to train and test on. $)

$( Declare the primitive constant symbols of propositional calculus. $)
  $c ( $.  $( Left parenthesis $)
  $c ) $.  $( Right parenthesis $)
  $c -> $. $( Implication (read: "implies") $)
  $c -. $. $( Negation (read: "not") $)
  $c wff $. $( Typecode of well-formed formulas $)
  $c |- $. $( Turnstile (read: "it is provable that") $)

  $( Variables standing for well-formed formulas. $)
  $v ph ps ch th ta et ze si $.

  $( Let variable ph be a wff. $)
  wph $f wff ph $.
  $( Let variable ps be a wff. $)
  wps $f wff ps $.
  $( Let variable ch be a wff. $)
  wch $f wff ch $.
  $( Let variable th be a wff. $)
  wth $f wff th $.
  $( Let variable ta be a wff. $)
  wta $f wff ta $.
  $( Let variable et be a wff. $)
  wet $f wff et $.
  $( Let variable ze be a wff. $)
  wze $f wff ze $.
  $( Let variable si be a wff. $)
  wsi $f wff si $.

  $( If ph is a wff, so is -. ph (negation). $)
  wn $a wff -. ph $.

  $( If ph and ps are wffs, so is ( ph -> ps ) (implication). $)
  wi $a wff ( ph -> ps ) $.

  $( Rule of modus ponens: from ph and ( ph -> ps ), infer ps. $)
  ${
    min $e |- ph $.
    maj $e |- ( ph -> ps ) $.
    ax-mp $a |- ps $.
  $}

  $( Axiom of simplification (Frege's first axiom). $)
  ax-1 $a |- ( ph -> ( ps -> ph ) ) $.

  $( Axiom of distribution (Frege's second axiom). $)
  ax-2 $a |- ( ( ph -> ( ps -> ch ) ) -> ( ( ph -> ps ) -> ( ph -> ch ) ) ) $.

  $( Axiom of contraposition, Lukasiewicz's third axiom. $)
  ax-3 $a |- ( ( -. ph -> -. ps ) -> ( ps -> ph ) ) $.


$(
======================================================================
  Implication
======================================================================

  Theorems of the implicational fragment, from the axioms ax-1 and ax-2 and
  the rule of modus ponens.
$)

  ${
    mp2.1 $e |- ph $.
    mp2.2 $e |- ps $.
    mp2.3 $e |- ( ph -> ( ps -> ch ) ) $.
    $( A double modus ponens inference. $)
    mp2 $p |- ch $=
      ( wi ax-mp ) BCEABCGDFHH $.
  $}

  ${
    a1i.1 $e |- ph $.
    $( Inference introducing an antecedent. $)
    a1i $p |- ( ps -> ph ) $=
      ( wi ax-1 ax-mp ) ABADCABEF $.
  $}

  ${
    a2i.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( Inference distributing an antecedent. $)
    a2i $p |- ( ( ph -> ps ) -> ( ph -> ch ) ) $=
      ( wi ax-2 ax-mp ) ABCEEABEACEEDABCFG $.
  $}

  ${
    mpd.1 $e |- ( ph -> ps ) $.
    mpd.2 $e |- ( ph -> ( ps -> ch ) ) $.
    $( A modus ponens deduction. $)
    mpd $p |- ( ph -> ch ) $=
      ( wi a2i ax-mp ) ABFACFDABCEGH $.
  $}

  ${
    imim2i.1 $e |- ( ph -> ps ) $.
    $( Inference adding an antecedent to both sides of an implication. $)
    imim2i $p |- ( ( ch -> ph ) -> ( ch -> ps ) ) $=
      ( wi a1i a2i ) CABABECDFG $.
  $}

  ${
    syl.1 $e |- ( ph -> ps ) $.
    syl.2 $e |- ( ps -> ch ) $.
    $( Syllogism: an inference chaining two implications. $)
    syl $p |- ( ph -> ch ) $=
      ( wi a1i mpd ) ABCDBCFAEGH $.
  $}

  ${
    3syl.1 $e |- ( ph -> ps ) $.
    3syl.2 $e |- ( ps -> ch ) $.
    3syl.3 $e |- ( ch -> th ) $.
    $( Inference chaining two syllogisms. $)
    3syl $p |- ( ph -> th ) $=
      ( syl ) ACDABCEFHGH $.
  $}

  ${
    mpi.1 $e |- ps $.
    mpi.2 $e |- ( ph -> ( ps -> ch ) ) $.
    $( A nested modus ponens inference. $)
    mpi $p |- ( ph -> ch ) $=
      ( a1i mpd ) ABCBADFEG $.
  $}

  $( Principle of identity: every wff implies itself. $)
  id $p |- ( ph -> ph ) $=
    ( wi ax-1 mpd ) AAABZAAACAECD $.

  ${
    a1d.1 $e |- ( ph -> ps ) $.
    $( Deduction introducing an embedded antecedent. $)
    a1d $p |- ( ph -> ( ch -> ps ) ) $=
      ( wi ax-1 syl ) ABCBEDBCFG $.
  $}

  ${
    a2d.1 $e |- ( ph -> ( ps -> ( ch -> th ) ) ) $.
    $( Deduction distributing an embedded antecedent. $)
    a2d $p |- ( ph -> ( ( ps -> ch ) -> ( ps -> th ) ) ) $=
      ( wi ax-2 syl ) ABCDFFBCFBDFFEBCDGH $.
  $}

  ${
    com12.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( Inference commuting two antecedents. $)
    com12 $p |- ( ps -> ( ph -> ch ) ) $=
      ( wi ax-1 a2i syl ) BABEACEBAFABCDGH $.
  $}

  ${
    syl5.1 $e |- ( ph -> ps ) $.
    syl5.2 $e |- ( ch -> ( ps -> th ) ) $.
    $( A syllogism rule of inference: the first premise replaces an embedded
       antecedent. $)
    syl5 $p |- ( ch -> ( ph -> th ) ) $=
      ( wi com12 syl ) ACDABCDGECBDFHIH $.
  $}

  ${
    syl6.1 $e |- ( ph -> ( ps -> ch ) ) $.
    syl6.2 $e |- ( ch -> th ) $.
    $( A syllogism rule of inference: the second premise replaces a nested
       consequent. $)
    syl6 $p |- ( ph -> ( ps -> th ) ) $=
      ( wi imim2i syl ) ABCGBDGECDBFHI $.
  $}

  $( An antecedent implies its conditional's consequent (assertion).  Theorem
     *2.27 of Principia Mathematica. $)
  pm2.27 $p |- ( ph -> ( ( ph -> ps ) -> ps ) ) $=
    ( wi id com12 ) ABCZABFDE $.

  ${
    syld.1 $e |- ( ph -> ( ps -> ch ) ) $.
    syld.2 $e |- ( ph -> ( ch -> th ) ) $.
    $( Syllogism deduction. $)
    syld $p |- ( ph -> ( ps -> th ) ) $=
      ( wi a1d a2d mpd ) ABCGBDGEABCDACDGBFHIJ $.
  $}

  ${
    pm2.43i.1 $e |- ( ph -> ( ph -> ps ) ) $.
    $( Inference absorbing a redundant antecedent. $)
    pm2.43i $p |- ( ph -> ps ) $=
      ( id mpd ) AABADCE $.
  $}

  $( Absorption of a redundant antecedent.  Theorem *2.43 of Principia
     Mathematica. $)
  pm2.43 $p |- ( ( ph -> ( ph -> ps ) ) -> ( ph -> ps ) ) $=
    ( wi id ax-2 mpi ) AABCZCAACGADAABEF $.

  ${
    imim2d.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( Deduction adding nested antecedents. $)
    imim2d $p |- ( ph -> ( ( th -> ps ) -> ( th -> ch ) ) ) $=
      ( wi a1d a2d ) ADBCABCFDEGH $.
  $}

  $( A closed form of syllogism: an implication may be prefixed. $)
  imim2 $p |- ( ( ph -> ps ) -> ( ( ch -> ph ) -> ( ch -> ps ) ) ) $=
    ( wi ax-1 a2d ) ABDZCABGCEF $.

  ${
    imim12i.1 $e |- ( ph -> ps ) $.
    imim12i.2 $e |- ( ch -> th ) $.
    $( Inference joining two implications. $)
    imim12i $p |- ( ( ps -> ch ) -> ( ph -> th ) ) $=
      ( wi imim2i syl5 ) ABBCGDECDBFHI $.
  $}

  ${
    imim1i.1 $e |- ( ph -> ps ) $.
    $( Inference adding a consequent to both sides of an implication. $)
    imim1i $p |- ( ( ps -> ch ) -> ( ph -> ch ) ) $=
      ( wi id syl5 ) ABBCEZCDHFG $.
  $}

  ${
    sylc.1 $e |- ( ph -> ps ) $.
    sylc.2 $e |- ( ph -> ch ) $.
    sylc.3 $e |- ( ps -> ( ch -> th ) ) $.
    $( A syllogism inference combined with contraction. $)
    sylc $p |- ( ph -> th ) $=
      ( wi syl mpd ) ACDFABCDHEGIJ $.
  $}

  $( A closed form of syllogism: an implication may be suffixed. $)
  imim1 $p |- ( ( ph -> ps ) -> ( ( ps -> ch ) -> ( ph -> ch ) ) ) $=
    ( wi imim2 com12 ) BCDABDACDBCAEF $.

  ${
    com23.1 $e |- ( ph -> ( ps -> ( ch -> th ) ) ) $.
    $( Commutation of the second and third antecedents. $)
    com23 $p |- ( ph -> ( ch -> ( ps -> th ) ) ) $=
      ( wi ax-1 a2d syl5 ) CBCFABDFCBGABCDEHI $.
  $}

  $( Swap antecedents (closed form of com12).  Theorem *2.04 of Principia
     Mathematica. $)
  pm2.04 $p |- ( ( ph -> ( ps -> ch ) ) -> ( ps -> ( ph -> ch ) ) ) $=
    ( wi ax-1 ax-2 syl5 ) BABDABCDDACDBAEABCFG $.

$(
======================================================================
  Negation
======================================================================

  Theorems using the axiom of contraposition ax-3.
$)

  ${
    con4d.1 $e |- ( ph -> ( -. ps -> -. ch ) ) $.
    $( Deduction version of ax-3 (contraposition). $)
    con4d $p |- ( ph -> ( ch -> ps ) ) $=
      ( wn wi ax-3 syl ) ABECEFCBFDBCGH $.
  $}

  ${
    pm2.21d.1 $e |- ( ph -> -. ps ) $.
    $( A contradiction implies anything (deduction). $)
    pm2.21d $p |- ( ph -> ( ps -> ch ) ) $=
      ( wn a1d con4d ) ACBABECEDFG $.
  $}

  $( From a wff and its negation, anything follows.  Theorem *2.21 of Principia
     Mathematica. $)
  pm2.21 $p |- ( -. ph -> ( ph -> ps ) ) $=
    ( wn ax-1 con4d ) ACZBAFBCDE $.

  $( A wff and its negation imply anything.  Theorem *2.24 of Principia
     Mathematica. $)
  pm2.24 $p |- ( ph -> ( -. ph -> ps ) ) $=
    ( wn pm2.21 com12 ) ACABABDE $.

  $( Clavius's law: a wff implied by its own negation holds.  Theorem *2.18 of
     Principia Mathematica. $)
  pm2.18 $p |- ( ( -. ph -> ph ) -> ph ) $=
    ( wn wi pm2.21 a2i ax-3 syl pm2.43i ) ABZACZAJIJBZCJACIAKAKDEAJFGH $.

  $( Double negation elimination.  Theorem *2.14 of Principia Mathematica. $)
  notnot2 $p |- ( -. -. ph -> ph ) $=
    ( wn wi pm2.21 pm2.18 syl ) ABZBGACAGADAEF $.

  ${
    con2d.1 $e |- ( ph -> ( ps -> -. ch ) ) $.
    $( A contraposition deduction. $)
    con2d $p |- ( ph -> ( ch -> -. ps ) ) $=
      ( wn notnot2 syl5 con4d ) ABEZCIEBACEBFDGH $.
  $}

  $( Contraposition.  Theorem *2.03 of Principia Mathematica. $)
  con2 $p |- ( ( ph -> -. ps ) -> ( ps -> -. ph ) ) $=
    ( wn wi id con2d ) ABCZDZABHEF $.

  ${
    con2i.1 $e |- ( ph -> -. ps ) $.
    $( A contraposition inference. $)
    con2i $p |- ( ps -> -. ph ) $=
      ( wn wi con2 ax-mp ) ABDEBADECABFG $.
  $}

  $( Double negation introduction.  Theorem *2.12 of Principia Mathematica. $)
  notnot1 $p |- ( ph -> -. -. ph ) $=
    ( wn id con2i ) ABZAECD $.

  ${
    con1d.1 $e |- ( ph -> ( -. ps -> ch ) ) $.
    $( A contraposition deduction. $)
    con1d $p |- ( ph -> ( -. ch -> ps ) ) $=
      ( wn notnot1 syl6 con4d ) ABCEZABECIEDCFGH $.
  $}

  $( Contraposition.  Theorem *2.15 of Principia Mathematica. $)
  con1 $p |- ( ( -. ph -> ps ) -> ( -. ps -> ph ) ) $=
    ( wn wi id con1d ) ACZBDZABHEF $.

  ${
    con1i.1 $e |- ( -. ph -> ps ) $.
    $( A contraposition inference. $)
    con1i $p |- ( -. ps -> ph ) $=
      ( wn wi con1 ax-mp ) ADBEBDAECABFG $.
  $}

  ${
    con4i.1 $e |- ( -. ph -> -. ps ) $.
    $( Inference version of ax-3 (contraposition). $)
    con4i $p |- ( ps -> ph ) $=
      ( wn wi ax-3 ax-mp ) ADBDEBAECABFG $.
  $}

  ${
    pm2.21i.1 $e |- -. ph $.
    $( A contradiction implies anything (inference). $)
    pm2.21i $p |- ( ph -> ps ) $=
      ( wn wi pm2.21 ax-mp ) ADABECABFG $.
  $}

  ${
    con3d.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( A contraposition deduction. $)
    con3d $p |- ( ph -> ( -. ch -> -. ps ) ) $=
      ( wn notnot2 syl5 con1d ) ABEZCIEBACBFDGH $.
  $}

  $( Contraposition.  Theorem *2.16 of Principia Mathematica. $)
  con3 $p |- ( ( ph -> ps ) -> ( -. ps -> -. ph ) ) $=
    ( wi id con3d ) ABCZABFDE $.

  ${
    con3i.1 $e |- ( ph -> ps ) $.
    $( A contraposition inference. $)
    con3i $p |- ( -. ps -> -. ph ) $=
      ( wi wn con3 ax-mp ) ABDBEAEDCABFG $.
  $}

  $( A conjunction (in implication-negation form) of two true wffs is true. $)
  pm3.2im $p |- ( ph -> ( ps -> -. ( ph -> -. ps ) ) ) $=
    ( wn wi pm2.27 con2d ) AABCZDBAGEF $.

  ${
    jc.1 $e |- ( ph -> ps ) $.
    jc.2 $e |- ( ph -> ch ) $.
    $( Deduction joining two consequents (in implication-negation form). $)
    jc $p |- ( ph -> -. ( ps -> -. ch ) ) $=
      ( wn wi pm3.2im sylc ) ABCBCFGFDEBCHI $.
  $}

  ${
    impi.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( An importation inference (implication-negation form of conjunction). $)
    impi $p |- ( -. ( ph -> -. ps ) -> ch ) $=
      ( wn wi con3d com12 con1i ) CABEZFACEJABCDGHI $.
  $}

  ${
    expi.1 $e |- ( -. ( ph -> -. ps ) -> ch ) $.
    $( An exportation inference (implication-negation form of conjunction). $)
    expi $p |- ( ph -> ( ps -> ch ) ) $=
      ( wn wi con1i com12 con4d ) ACBCEABEZAJFCDGHI $.
  $}

  $( A conjunction (in implication-negation form) implies its right member. $)
  simprim $p |- ( -. ( ph -> -. ps ) -> ps ) $=
    ( wn wi ax-1 con1i ) BABCZDGAEF $.

  $( The negation of an implication implies its antecedent. $)
  simplim $p |- ( -. ( ph -> ps ) -> ph ) $=
    ( wi pm2.21 con1i ) AABCABDE $.

  ${
    pm2.61i.1 $e |- ( ph -> ps ) $.
    pm2.61i.2 $e |- ( -. ph -> ps ) $.
    $( Inference eliminating an antecedent by cases. $)
    pm2.61i $p |- ps $=
      ( wn wi con1i syl pm2.18 ax-mp ) BEZBFBKABABDGCHBIJ $.
  $}

  $( Case elimination: a wff that follows from another and from its negation
     holds.  Theorem *2.61 of Principia Mathematica. $)
  pm2.61 $p |- ( ( ph -> ps ) -> ( ( -. ph -> ps ) -> ps ) ) $=
    ( wi wn con1 imim2 syl5 pm2.18 syl6 ) ABCZADZBCZBDZBCZBLMACJNABEABMFGBHI $.

  $( Reductio ad absurdum: a wff implying a statement and its negation is
     false.  Theorem *2.65 of Principia Mathematica. $)
  pm2.65 $p |- ( ( ph -> ps ) -> ( ( ph -> -. ps ) -> -. ph ) ) $=
    ( wn wi con2 con3 pm2.61 com12 syl syl5 )
    ABCZDBACZDZABDZLABENKLDZMLDABFMOLBLGHIJ $.

  ${
    mto.1 $e |- -. ps $.
    mto.2 $e |- ( ph -> ps ) $.
    $( Modus tollens. $)
    mto $p |- -. ph $=
      ( wn con3i ax-mp ) BEAECABDFG $.
  $}

  $( Peirce's axiom: a classical principle not valid intuitionistically. $)
  peirce $p |- ( ( ( ph -> ps ) -> ph ) -> ph ) $=
    ( wi wn pm2.21 imim1i pm2.18 syl ) ABCZACADZACAJIAABEFAGH $.

  $( Justification for the definition df-bi: the formula it uses to define ( ph
     <-> ps ) is true when ( ph <-> ps ) is replaced by that formula itself. $)
  bijust $p |- -. ( ( -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) -> -. ( ( ph -> ps
      ) -> -. ( ps -> ph ) ) ) -> -. ( -. ( ( ph -> ps ) -> -. ( ps -> ph ) )
      -> -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) ) ) $=
    ( wi wn id pm3.2im mp2 ) ABCZBACZDZCZDZLCZMMMDCDLEZNMMFG $.

  $( Declare the biconditional symbol (read: "if and only if"). $)
  $c <-> $.

  $( Extend wff notation to the biconditional. $)
  wb $a wff ( ph <-> ps ) $.

  $( Define the biconditional with implication and negation only:
     ( ph <-> ps ) holds exactly when ( ph -> ps ) and ( ps -> ph ) both hold.
     The outer form -. ( A -> -. B ) says "A and B", so this axiom says that
     ( ph <-> ps ) implies the pair of implications and the pair of
     implications implies ( ph <-> ps ).  The formula is justified by
     ~ bijust . $)
  df-bi $a |- -. ( ( ( ph <-> ps ) -> -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) )
        -> -. ( -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) -> ( ph <-> ps ) ) ) $.

$(
======================================================================
  Biconditional
======================================================================

  Theorems about the biconditional, from its definition df-bi.
$)

  $( Two implications in opposite directions give a biconditional. $)
  impbi $p |- ( ( ph -> ps ) -> ( ( ps -> ph ) -> ( ph <-> ps ) ) ) $=
    ( wi wn wb pm3.2im df-bi simprim ax-mp syl6 )
    ABCZBACZKLDZCZDZABEZKLFPOCZOPCZDCDRABGQRHIJ $.

  ${
    impbii.1 $e |- ( ph -> ps ) $.
    impbii.2 $e |- ( ps -> ph ) $.
    $( Infer a biconditional from two implications. $)
    impbii $p |- ( ph <-> ps ) $=
      ( wi wb impbi mp2 ) ABEBAEABFCDABGH $.
  $}

  $( A biconditional implies the forward implication. $)
  biimp $p |- ( ( ph <-> ps ) -> ( ph -> ps ) ) $=
    ( wb wi wn df-bi simplim ax-mp syl )
    ABCZABDZBADZEZDZEZKJODZOJDZEZDEPABFPRGHKMGI $.

  ${
    biimpi.1 $e |- ( ph <-> ps ) $.
    $( Infer an implication from a biconditional. $)
    biimpi $p |- ( ph -> ps ) $=
      ( wb wi biimp ax-mp ) ABDABECABFG $.
  $}

  ${
    sylbi.1 $e |- ( ph <-> ps ) $.
    sylbi.2 $e |- ( ps -> ch ) $.
    $( A mixed syllogism inference from a biconditional and an implication. $)
    sylbi $p |- ( ph -> ch ) $=
      ( biimpi syl ) ABCABDFEG $.
  $}

  ${
    sylib.1 $e |- ( ph -> ps ) $.
    sylib.2 $e |- ( ps <-> ch ) $.
    $( A mixed syllogism inference from an implication and a biconditional. $)
    sylib $p |- ( ph -> ch ) $=
      ( biimpi syl ) ABCDBCEFG $.
  $}

  $( A biconditional implies the reverse implication. $)
  biimpr $p |- ( ( ph <-> ps ) -> ( ps -> ph ) ) $=
    ( wb wi wn df-bi simplim ax-mp simprim syl )
    ABCZABDZBADZEZDZEZMKPDZPKDZEZDEQABFQSGHLMIJ $.

  ${
    bicomi.1 $e |- ( ph <-> ps ) $.
    $( Inference commuting a biconditional. $)
    bicomi $p |- ( ps <-> ph ) $=
      ( wb wi biimpr ax-mp biimpi impbii ) BAABDBAECABFGABCHI $.
  $}

  ${
    biimpri.1 $e |- ( ph <-> ps ) $.
    $( Infer the converse implication from a biconditional. $)
    biimpri $p |- ( ps -> ph ) $=
      ( wb wi biimpr ax-mp ) ABDBAECABFG $.
  $}

  ${
    mpbi.1 $e |- ph $.
    mpbi.2 $e |- ( ph <-> ps ) $.
    $( An inference from a biconditional, related to modus ponens. $)
    mpbi $p |- ps $=
      ( biimpi ax-mp ) ABCABDEF $.
  $}

  ${
    mpbir.1 $e |- ps $.
    mpbir.2 $e |- ( ph <-> ps ) $.
    $( An inference from a biconditional, related to modus ponens. $)
    mpbir $p |- ph $=
      ( biimpri ax-mp ) BACABDEF $.
  $}

  ${
    sylibr.1 $e |- ( ph -> ps ) $.
    sylibr.2 $e |- ( ch <-> ps ) $.
    $( A mixed syllogism inference from an implication and a biconditional. $)
    sylibr $p |- ( ph -> ch ) $=
      ( biimpri syl ) ABCDCBEFG $.
  $}

  ${
    sylbir.1 $e |- ( ps <-> ph ) $.
    sylbir.2 $e |- ( ps -> ch ) $.
    $( A mixed syllogism inference from a biconditional and an implication. $)
    sylbir $p |- ( ph -> ch ) $=
      ( biimpri syl ) ABCBADFEG $.
  $}

  $( Principle of identity for the biconditional. $)
  biid $p |- ( ph <-> ph ) $=
    ( id impbii ) AAABZDC $.

  ${
    bitri.1 $e |- ( ph <-> ps ) $.
    bitri.2 $e |- ( ps <-> ch ) $.
    $( An inference from transitivity of the biconditional. $)
    bitri $p |- ( ph <-> ch ) $=
      ( biimpi syl biimpri impbii ) ACABCABDFBCEFGCBABCEHABDHGI $.
  $}

  ${
    bitr4i.1 $e |- ( ph <-> ps ) $.
    bitr4i.2 $e |- ( ch <-> ps ) $.
    $( An inference from transitivity of the biconditional. $)
    bitr4i $p |- ( ph <-> ch ) $=
      ( bicomi bitri ) ABCDCBEFG $.
  $}

  $( Double negation.  Theorem *4.13 of Principia Mathematica. $)
  notnot $p |- ( ph <-> -. -. ph ) $=
    ( wn notnot1 notnot2 impbii ) AABBACADE $.

  ${
    notbii.1 $e |- ( ph <-> ps ) $.
    $( Negate both sides of a biconditional. $)
    notbii $p |- ( -. ph <-> -. ps ) $=
      ( wn biimpri con3i biimpi impbii ) ADBDBAABCEFABABCGFH $.
  $}

  ${
    imbi2i.1 $e |- ( ph <-> ps ) $.
    $( Introduce an antecedent to both sides of a biconditional. $)
    imbi2i $p |- ( ( ch -> ph ) <-> ( ch -> ps ) ) $=
      ( wi biimpi imim2i biimpri impbii ) CAECBEABCABDFGBACABDHGI $.
  $}

  ${
    imbi1i.1 $e |- ( ph <-> ps ) $.
    $( Introduce a consequent to both sides of a biconditional. $)
    imbi1i $p |- ( ( ph -> ch ) <-> ( ps -> ch ) ) $=
      ( wi biimpri imim1i biimpi impbii ) ACEBCEBACABDFGABCABDHGI $.
  $}

  ${
    imbi12i.1 $e |- ( ph <-> ps ) $.
    imbi12i.2 $e |- ( ch <-> th ) $.
    $( Join two biconditionals with implication. $)
    imbi12i $p |- ( ( ph -> ch ) <-> ( ps -> th ) ) $=
      ( wi biimpri biimpi imim12i impbii ) ACGBDGBACDABEHCDFIJABDCABEICDFHJK $.
  $}

  $( Declare the connectives for disjunction ("or") and conjunction ("and"). $)
  $c \/ $.
  $c /\ $.

  $( Extend wff notation to disjunction. $)
  wo $a wff ( ph \/ ps ) $.

  $( Extend wff notation to conjunction. $)
  wa $a wff ( ph /\ ps ) $.

  $( Define disjunction: ( ph \/ ps ) holds when ps follows from the negation
     of ph. $)
  df-or $a |- ( ( ph \/ ps ) <-> ( -. ph -> ps ) ) $.

  $( Define conjunction: ( ph /\ ps ) holds when ph does not imply the
     negation of ps. $)
  df-an $a |- ( ( ph /\ ps ) <-> -. ( ph -> -. ps ) ) $.

$(
======================================================================
  Disjunction and conjunction
======================================================================

  Theorems about \/ and /\ from their definitions df-or and df-an.
$)

  $( Deduce a disjunction from an implication.  Theorem *2.54 of Principia
     Mathematica. $)
  pm2.54 $p |- ( ( -. ph -> ps ) -> ( ph \/ ps ) ) $=
    ( wo wn wi df-or biimpri ) ABCADBEABFG $.

  ${
    ori.1 $e |- ( ph \/ ps ) $.
    $( Infer an implication from a disjunction. $)
    ori $p |- ( -. ph -> ps ) $=
      ( wo wn wi df-or mpbi ) ABDAEBFCABGH $.
  $}

  ${
    orri.1 $e |- ( -. ph -> ps ) $.
    $( Infer a disjunction from an implication. $)
    orri $p |- ( ph \/ ps ) $=
      ( wo wn wi df-or mpbir ) ABDAEBFCABGH $.
  $}

  ${
    jaoi.1 $e |- ( ph -> ps ) $.
    jaoi.2 $e |- ( ch -> ps ) $.
    $( Inference disjoining the antecedents of two implications. $)
    jaoi $p |- ( ( ph \/ ch ) -> ps ) $=
      ( wo wn wi df-or imim2i pm2.61 ax-mp syl sylbi )
      ACFAGZCHZBACIPOBHZBCBOEJABHQBHDABKLMN $.
  $}

  $( Introduction of a disjunct on the left.  Axiom *1.3 of Principia
     Mathematica. $)
  olc $p |- ( ph -> ( ps \/ ph ) ) $=
    ( wn wi wo ax-1 df-or sylibr ) ABCZADBAEAIFBAGH $.

  $( Introduction of a disjunct on the right.  Theorem *2.2 of Principia
     Mathematica. $)
  orc $p |- ( ph -> ( ph \/ ps ) ) $=
    ( wn wi wo pm2.24 df-or sylibr ) AACBDABEABFABGH $.

  $( Axiom *1.4 of Principia Mathematica: disjunction commutes. $)
  pm1.4 $p |- ( ( ph \/ ps ) -> ( ps \/ ph ) ) $=
    ( wo wn wi df-or con1 sylbi pm2.54 syl ) ABCZBDZAEZBACKADBEMABFABGHBAIJ $.

  $( Commutative law for disjunction.  Theorem *4.31 of Principia Mathematica.
     $)
  orcom $p |- ( ( ph \/ ps ) <-> ( ps \/ ph ) ) $=
    ( wo pm1.4 impbii ) ABCBACABDBADE $.

  $( Implication in terms of disjunction.  Theorem *4.6 of Principia
     Mathematica. $)
  imor $p |- ( ( ph -> ps ) <-> ( -. ph \/ ps ) ) $=
    ( wi wn wo notnot imbi1i df-or bitr4i ) ABCADZDZBCJBEAKBAFGJBHI $.

  ${
    imp.1 $e |- ( ph -> ( ps -> ch ) ) $.
    $( Importation inference: join two antecedents into a conjunction. $)
    imp $p |- ( ( ph /\ ps ) -> ch ) $=
      ( wa wn wi df-an impi sylbi ) ABEABFGFCABHABCDIJ $.
  $}

  ${
    ex.1 $e |- ( ( ph /\ ps ) -> ch ) $.
    $( Exportation inference: split a conjoined antecedent. $)
    ex $p |- ( ph -> ( ps -> ch ) ) $=
      ( wn wi wa df-an sylbir expi ) ABCABEFEABGCABHDIJ $.
  $}

  $( Join two wffs with a conjunction.  Theorem *3.2 of Principia Mathematica.
     $)
  pm3.2 $p |- ( ph -> ( ps -> ( ph /\ ps ) ) ) $=
    ( wn wi wa pm3.2im df-an biimpri syl6 ) ABABCZDZCZABEZABFMLABGHI $.

  ${
    pm3.2i.1 $e |- ph $.
    pm3.2i.2 $e |- ps $.
    $( Infer a conjunction from its members. $)
    pm3.2i $p |- ( ph /\ ps ) $=
      ( wa pm3.2 mp2 ) ABABECDABFG $.
  $}

  $( Elimination of a conjunct: a conjunction implies its left member. $)
  simpl $p |- ( ( ph /\ ps ) -> ph ) $=
    ( wa wn wi df-an simplim sylbi ) ABCABDZEDAABFAIGH $.

  ${
    simpli.1 $e |- ( ph /\ ps ) $.
    $( Inference eliminating a conjunct. $)
    simpli $p |- ph $=
      ( wa simpl ax-mp ) ABDACABEF $.
  $}

  $( Elimination of a conjunct: a conjunction implies its right member. $)
  simpr $p |- ( ( ph /\ ps ) -> ps ) $=
    ( wa wn wi df-an simprim sylbi ) ABCABDEDBABFABGH $.

  ${
    orim12i.1 $e |- ( ph -> ps ) $.
    orim12i.2 $e |- ( ch -> th ) $.
    $( Disjoin the antecedents and the consequents of two implications. $)
    orim12i $p |- ( ( ph \/ ch ) -> ( ps \/ th ) ) $=
      ( wo orc syl olc jaoi ) ABDGZCABLEBDHICDLFDBJIK $.
  $}

  ${
    orbi12i.1 $e |- ( ph <-> ps ) $.
    orbi12i.2 $e |- ( ch <-> th ) $.
    $( Join two biconditionals with disjunction. $)
    orbi12i $p |- ( ( ph \/ ch ) <-> ( ps \/ th ) ) $=
      ( wo biimpi orim12i biimpri impbii ) ACGBDGABCDABEHCDFHIBADCABEJCDFJIK $.
  $}

  ${
    jca.1 $e |- ( ph -> ps ) $.
    jca.2 $e |- ( ph -> ch ) $.
    $( Deduce a conjunction of the consequents of two implications with the
       same antecedent. $)
    jca $p |- ( ph -> ( ps /\ ch ) ) $=
      ( wn wi wa jc df-an sylibr ) ABCFGFBCHABCDEIBCJK $.
  $}

  ${
    anim12i.1 $e |- ( ph -> ps ) $.
    anim12i.2 $e |- ( ch -> th ) $.
    $( Conjoin the antecedents and the consequents of two implications. $)
    anim12i $p |- ( ( ph /\ ch ) -> ( ps /\ th ) ) $=
      ( wa simpl syl simpr jca ) ACGZBDLABACHEILCDACJFIK $.
  $}

  ${
    anbi12i.1 $e |- ( ph <-> ps ) $.
    anbi12i.2 $e |- ( ch <-> th ) $.
    $( Join two biconditionals with conjunction. $)
    anbi12i $p |- ( ( ph /\ ch ) <-> ( ps /\ th ) ) $=
      ( wa biimpi anim12i simpl biimpri syl simpr jca impbii )
      ACGBDGZABCDABEHCDFHIPACPBABDJABEKLPDCBDMCDFKLNO $.
  $}
